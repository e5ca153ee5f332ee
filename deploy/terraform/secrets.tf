# Secrets: generated here, stored in Secrets Manager, read by the instances at every start of
# Outgrow (never in user data, never in tfvars). They are in the Terraform state too: keep the
# state in an encrypted, access-controlled backend (versions.tf).
#
#   <name>/app-env    JSON of env vars: OUTGROW_DATABASE_URL, OUTGROW_DATABASE_REPLICA_URLS,
#                     OUTGROW_REDIS_URL — rewritten by Terraform when an endpoint changes
#   <name>/jwt-keys   JSON {"OUTGROW_JWT_KEYS": "kid:secret,…"} — generated once; rotate by
#                     hand (docs/operations.md "Rotating JWT keys"), Terraform leaves it alone
#   <name>/database   the master credentials (for psql and break-glass access)
#   <name>/redis-auth the Redis AUTH token ElastiCache is created with
#
# Put in SSM Parameter Store by hand, under /<name>/env/ (SecureString):
#   OUTGROW_SMTP_URL (required), OUTGROW_SENTRY_DSN (optional), any other OUTGROW_* secret.

resource "random_password" "db_master" {
  length  = 40
  special = false # goes into a URL unescaped
}

resource "random_password" "redis_auth" {
  length  = 64
  special = false # ElastiCache allows only a few specials; a URL needs none
}

resource "random_password" "jwt_key" {
  length  = 64
  special = false
}

resource "aws_secretsmanager_secret" "database" {
  name                    = "${var.name}/database"
  description             = "Outgrow: RDS master credentials (username, password, host, port, dbname)"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "database" {
  secret_id     = aws_secretsmanager_secret.database.id
  secret_string = jsonencode({
    engine   = "postgres"
    username = aws_db_instance.primary.username
    password = random_password.db_master.result
    host     = aws_db_instance.primary.address
    port     = aws_db_instance.primary.port
    dbname   = aws_db_instance.primary.db_name
  })
}

resource "aws_secretsmanager_secret" "redis_auth" {
  name                    = "${var.name}/redis-auth"
  description             = "Outgrow: ElastiCache Redis AUTH token"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "redis_auth" {
  secret_id     = aws_secretsmanager_secret.redis_auth.id
  secret_string = random_password.redis_auth.result
}

resource "aws_secretsmanager_secret" "app_env" {
  name                    = "${var.name}/app-env"
  description             = "Outgrow: secret environment of every instance (database and Redis URLs)"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "app_env" {
  secret_id     = aws_secretsmanager_secret.app_env.id
  secret_string = jsonencode({
    OUTGROW_DATABASE_URL = format(
      "postgres://%s:%s@%s:%d/%s?sslmode=%s&sslrootcert=/etc/outgrow/rds-ca.pem",
      aws_db_instance.primary.username, random_password.db_master.result,
      aws_db_instance.primary.address, aws_db_instance.primary.port,
      aws_db_instance.primary.db_name, var.database_tls_mode,
    )
    OUTGROW_DATABASE_REPLICA_URLS = join(",", [
      for replica in aws_db_instance.replica : format(
        "postgres://%s:%s@%s:%d/%s?sslmode=%s&sslrootcert=/etc/outgrow/rds-ca.pem",
        aws_db_instance.primary.username, random_password.db_master.result,
        replica.address, replica.port, aws_db_instance.primary.db_name, var.database_tls_mode,
      )
    ])
    # rediss://: TLS (transit encryption is required on the replication group).
    OUTGROW_REDIS_URL = format(
      "rediss://:%s@%s:%d",
      random_password.redis_auth.result,
      aws_elasticache_replication_group.main.primary_endpoint_address,
      aws_elasticache_replication_group.main.port,
    )
  })
}

resource "aws_secretsmanager_secret" "jwt_keys" {
  name                    = "${var.name}/jwt-keys"
  description             = "Outgrow: OUTGROW_JWT_KEYS (kid:secret,...; the first signs, all verify)"
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "jwt_keys" {
  secret_id     = aws_secretsmanager_secret.jwt_keys.id
  secret_string = jsonencode({
    OUTGROW_JWT_KEYS = "k1:${random_password.jwt_key.result}"
  })

  # Rotation is done by hand (add the new key second, move it first, drop the old one): a later
  # apply must not put k1 back.
  lifecycle {
    ignore_changes = [secret_string]
  }
}

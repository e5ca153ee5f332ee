# PostgreSQL on RDS: a Multi-AZ primary (synchronous standby in another AZ, automatic failover
# behind the same endpoint), encrypted, with automated backups (point-in-time restore within
# db_backup_retention_days), deletion protection and Performance Insights; plus
# db_replica_count asynchronous read replicas (OUTGROW_DATABASE_REPLICA_URLS), one per AZ.

locals {
  postgres_major = split(".", var.postgres_version)[0]
}

resource "aws_db_subnet_group" "main" {
  name        = var.name
  description = "Outgrow database subnets"
  subnet_ids  = aws_subnet.database[*].id

  tags = { Name = var.name }
}

resource "aws_db_parameter_group" "main" {
  name        = "${var.name}-postgres${local.postgres_major}"
  family      = "postgres${local.postgres_major}"
  description = "Outgrow PostgreSQL ${local.postgres_major}"

  # TLS only: the URLs carry sslmode=require or stronger.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Outgrow's own slow-request threshold is 500 ms: log statements slower than that.
  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  parameter {
    name  = "log_lock_waits"
    value = "1"
  }

  # scripts/explain-queries and the "pool exhaustion" runbook read pg_stat_statements.
  parameter {
    name         = "shared_preload_libraries"
    value        = "pg_stat_statements"
    apply_method = "pending-reboot"
  }

  # A session stuck in a transaction holds locks and a pool connection: end it after a minute
  # (Outgrow's transactions are short; statement_timeout is 10 s).
  parameter {
    name  = "idle_in_transaction_session_timeout"
    value = "60000"
  }

  # Replicas tell the primary which rows their queries still read, so that vacuum does not
  # cancel them (reads are bounded by statement_timeout anyway).
  parameter {
    name  = "hot_standby_feedback"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "primary" {
  identifier     = "${var.name}-primary"
  engine         = "postgres"
  engine_version = var.postgres_version
  instance_class = var.db_instance_class

  db_name  = "outgrow"
  username = "outgrow"
  password = random_password.db_master.result
  port     = 5432

  multi_az               = true
  db_subnet_group_name   = aws_db_subnet_group.main.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.main.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  storage_type          = "gp3"
  allocated_storage     = var.db_allocated_storage_gib
  max_allocated_storage = var.db_max_allocated_storage_gib
  storage_encrypted     = true

  # Automated backups + transaction logs = point-in-time restore to any second of the window.
  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "02:00-02:30"
  maintenance_window        = "sun:03:00-sun:04:00"
  copy_tags_to_snapshot     = true
  delete_automated_backups  = false
  deletion_protection       = true
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name}-primary-final"

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  performance_insights_enabled          = true
  performance_insights_retention_period = var.db_performance_insights_retention_days
  monitoring_interval                   = var.db_monitoring_interval_seconds
  monitoring_role_arn                   = one(aws_iam_role.rds_monitoring[*].arn)
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  tags = { Name = "${var.name}-primary", Role = "primary" }
}

resource "aws_db_instance" "replica" {
  count = var.db_replica_count

  identifier          = "${var.name}-replica-${count.index + 1}"
  replicate_source_db = aws_db_instance.primary.identifier
  instance_class      = var.db_replica_instance_class

  # Spread over the AZs, starting with the one after the first.
  availability_zone      = local.azs[(count.index + 1) % length(local.azs)]
  multi_az               = false
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.main.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  storage_type          = "gp3"
  max_allocated_storage = var.db_max_allocated_storage_gib
  storage_encrypted     = true # inherited from the primary's snapshot

  # A replica is rebuilt from the primary, not restored: no backups, no final snapshot, and
  # db_replica_count may be lowered.
  backup_retention_period = 0
  skip_final_snapshot     = true
  deletion_protection     = false

  auto_minor_version_upgrade = true
  apply_immediately          = false

  performance_insights_enabled          = true
  performance_insights_retention_period = var.db_performance_insights_retention_days
  monitoring_interval                   = var.db_monitoring_interval_seconds
  monitoring_role_arn                   = one(aws_iam_role.rds_monitoring[*].arn)
  enabled_cloudwatch_logs_exports       = ["postgresql"]

  tags = { Name = "${var.name}-replica-${count.index + 1}", Role = "replica" }
}

# Failovers, failures, low storage, maintenance: to the alarm topic.
resource "aws_db_event_subscription" "main" {
  name      = var.name
  sns_topic = aws_sns_topic.alarms.arn

  source_type      = "db-instance"
  source_ids       = concat([aws_db_instance.primary.identifier], aws_db_instance.replica[*].identifier)
  event_categories = [
    "availability",
    "failover",
    "failure",
    "low storage",
    "maintenance",
    "read replica",
    "recovery",
  ]
}

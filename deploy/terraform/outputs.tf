# What the stack hands back: where to point DNS, the endpoints and names the runbooks use.
# Nothing secret: the URLs with credentials stay in Secrets Manager (app_env_secret_arn).

output "alb_dns_name" {
  description = "DNS name of the load balancer: point public_url's host at it (CNAME, or a Route 53 alias with alb_zone_id)."
  value       = aws_lb.main.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone id of the load balancer, for an alias record."
  value       = aws_lb.main.zone_id
}

output "rds_primary_endpoint" {
  description = "Endpoint (host:port) of the PostgreSQL primary, OUTGROW_DATABASE_URL's host; it follows a Multi-AZ failover."
  value       = aws_db_instance.primary.endpoint
}

output "rds_primary_identifier" {
  description = "RDS identifier of the primary (point-in-time restore: aws rds restore-db-instance-to-point-in-time --source-db-instance-identifier ...)."
  value       = aws_db_instance.primary.identifier
}

output "rds_reader_endpoints" {
  description = "Endpoints (host:port) of the read replicas, in OUTGROW_DATABASE_REPLICA_URLS order."
  value       = aws_db_instance.replica[*].endpoint
}

output "redis_primary_endpoint" {
  description = "Primary endpoint of the Redis replication group (OUTGROW_REDIS_URL's host, TLS on port 6379); it follows a failover."
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
}

output "redis_reader_endpoint" {
  description = "Reader endpoint of the Redis replication group (not used by Outgrow; for inspection)."
  value       = aws_elasticache_replication_group.main.reader_endpoint_address
}

output "bucket_name" {
  description = "The uploads/exports bucket (OUTGROW_OBJECT_STORE_URL=s3://<bucket_name>)."
  value       = aws_s3_bucket.objects.bucket
}

output "sns_topic_arn" {
  description = "SNS topic every alarm and RDS/ElastiCache event notifies; subscribe pagers or chat here."
  value       = aws_sns_topic.alarms.arn
}

output "api_asg_name" {
  description = "Auto Scaling group of the API instances (instance refresh, scaling)."
  value       = aws_autoscaling_group.api.name
}

output "worker_asg_name" {
  description = "Auto Scaling group of the worker instances (the migrate step runs on one of them)."
  value       = aws_autoscaling_group.worker.name
}

output "api_launch_template_id" {
  description = "Launch template of the API; a rollback refreshes the group to its previous version."
  value       = aws_launch_template.api.id
}

output "app_env_secret_arn" {
  description = "Secrets Manager secret holding OUTGROW_DATABASE_URL, OUTGROW_DATABASE_REPLICA_URLS and OUTGROW_REDIS_URL."
  value       = aws_secretsmanager_secret.app_env.arn
}

output "jwt_keys_secret_arn" {
  description = "Secrets Manager secret holding OUTGROW_JWT_KEYS (rotate by hand: docs/operations.md, Rotating JWT keys)."
  value       = aws_secretsmanager_secret.jwt_keys.arn
}

output "ssm_parameter_path" {
  description = "SSM Parameter Store path for the secrets put in by hand: <path>/OUTGROW_SMTP_URL (required), <path>/OUTGROW_SENTRY_DSN (optional)."
  value       = local.ssm_env_path
}

output "log_groups" {
  description = "CloudWatch Logs groups of the API and worker containers (JSON lines)."
  value       = {
    api    = aws_cloudwatch_log_group.api.name
    worker = aws_cloudwatch_log_group.worker.name
  }
}

output "vpc_id" {
  description = "The VPC (for peering, a bastion, or a Prometheus that scrapes /metrics inside it)."
  value       = aws_vpc.main.id
}

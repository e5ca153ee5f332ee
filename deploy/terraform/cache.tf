# Redis on ElastiCache: a replication group (cluster mode off) of redis_num_cache_clusters nodes
# in different AZs, Multi-AZ with automatic failover behind the primary endpoint, encrypted at
# rest and in transit (TLS required: OUTGROW_REDIS_URL is rediss://), AUTH token from Secrets
# Manager.

resource "aws_elasticache_subnet_group" "main" {
  name        = var.name
  description = "Outgrow Redis subnets"
  subnet_ids  = aws_subnet.database[*].id
}

resource "aws_elasticache_parameter_group" "main" {
  name        = "${var.name}-redis7"
  family      = "redis7"
  description = "Outgrow Redis 7"

  # Under memory pressure evict only keys with a TTL (cache entries, rate-limit windows, read-
  # your-writes markers, sessions) — least recently used first.
  parameter {
    name  = "maxmemory-policy"
    value = "volatile-lru"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_elasticache_replication_group" "main" {
  replication_group_id = "${var.name}-redis"
  description          = "Outgrow cache, sessions, rate limits and invalidation bus"

  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.main.name

  num_cache_clusters          = var.redis_num_cache_clusters
  automatic_failover_enabled  = true
  multi_az_enabled            = true
  preferred_cache_cluster_azs = [
    for i in range(var.redis_num_cache_clusters) : local.azs[i % length(local.azs)]
  ]

  subnet_group_name  = aws_elasticache_subnet_group.main.name
  security_group_ids = [aws_security_group.redis.id]

  at_rest_encryption_enabled = true
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  auth_token                 = aws_secretsmanager_secret_version.redis_auth.secret_string
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit = var.redis_snapshot_retention_days
  snapshot_window          = "01:00-02:00"
  maintenance_window       = "sun:04:30-sun:05:30"

  auto_minor_version_upgrade = true
  apply_immediately          = false
  notification_topic_arn     = aws_sns_topic.alarms.arn

  log_delivery_configuration {
    destination      = aws_cloudwatch_log_group.redis_slow_log.name
    destination_type = "cloudwatch-logs"
    log_format       = "json"
    log_type         = "slow-log"
  }

  tags = { Name = "${var.name}-redis" }
}

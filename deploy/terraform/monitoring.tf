# Logs and alarms. Every alarm notifies the SNS topic (and again when it recovers); its
# description names the runbook section (docs/operations.md, or README.md#alarms here). The
# thresholds follow deploy/prometheus/alerts.yml where both watch the same thing.

resource "aws_sns_topic" "alarms" {
  name = "${var.name}-alarms"
}

# Who may publish: the account (the topic's default policy, kept), CloudWatch alarms and RDS
# event notifications of this account.
data "aws_iam_policy_document" "alarms_topic" {
  statement {
    sid     = "AccountOwner"
    actions = [
      "SNS:AddPermission",
      "SNS:DeleteTopic",
      "SNS:GetTopicAttributes",
      "SNS:ListSubscriptionsByTopic",
      "SNS:Publish",
      "SNS:RemovePermission",
      "SNS:SetTopicAttributes",
      "SNS:Subscribe",
    ]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceOwner"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "AwsServices"
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.rds.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarms_topic.json
}

resource "aws_sns_topic_subscription" "alarm_email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- Log groups ---------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "api" {
  name              = local.log_group_api
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "worker" {
  name              = local.log_group_worker
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_group" "redis_slow_log" {
  name              = "/${var.name}/redis/slow-log"
  retention_in_days = var.log_retention_days
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]

  alb_dimensions = {
    LoadBalancer = aws_lb.main.arn_suffix
    TargetGroup  = aws_lb_target_group.api.arn_suffix
  }

  # Every RDS instance, by a key known at plan time.
  db_replicas = {
    for i in range(var.db_replica_count) : "replica-${i + 1}" => aws_db_instance.replica[i].identifier
  }
  db_instances = merge({ primary = aws_db_instance.primary.identifier }, local.db_replicas)

  # ElastiCache names a replication group's nodes <group id>-001, -002, …
  redis_nodes = {
    for i in range(var.redis_num_cache_clusters) :
    format("node-%03d", i + 1) => format("%s-%03d", aws_elasticache_replication_group.main.id, i + 1)
  }
}

# --- Load balancer ------------------------------------------------------------------------------

# 5xx answers of the instances above 1 % of requests for 5 minutes (as OutgrowHighErrorRate).
resource "aws_cloudwatch_metric_alarm" "alb_5xx_rate" {
  alarm_name          = "${var.name}-alb-5xx-rate"
  alarm_description   = "Outgrow: more than 1 % of requests answered 5xx by the instances for 5 min. Runbook: ${local.runbook.high_error_rate}"
  comparison_operator = "GreaterThanThreshold"
  threshold           = 1
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)"
    label       = "5xx % of requests"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      dimensions  = local.alb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      dimensions  = local.alb_dimensions
      period      = 60
      stat        = "Sum"
    }
  }
}

# p95 of the instances' response time above 500 ms for 10 minutes (as OutgrowHighLatencyP95).
resource "aws_cloudwatch_metric_alarm" "alb_p95_latency" {
  alarm_name          = "${var.name}-alb-p95-latency"
  alarm_description   = "Outgrow: p95 target response time above 0.5 s for 10 min. Runbook: ${local.runbook.high_latency}"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  dimensions          = local.alb_dimensions
  extended_statistic  = "p95"
  period              = 60
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0.5
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# An instance failing /readyz for 5 minutes (a draining one is out within the drain).
resource "aws_cloudwatch_metric_alarm" "alb_unhealthy_hosts" {
  alarm_name          = "${var.name}-alb-unhealthy-hosts"
  alarm_description   = "Outgrow: an API instance has failed its /readyz health check for 5 min. Runbook: ${local.runbook.instance_down}"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = local.alb_dimensions
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# No healthy instance at all: the store is down.
resource "aws_cloudwatch_metric_alarm" "alb_no_healthy_hosts" {
  alarm_name          = "${var.name}-alb-no-healthy-hosts"
  alarm_description   = "Outgrow: no API instance passes /readyz, the load balancer answers 503. Runbook: ${local.runbook.instance_down}"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = local.alb_dimensions
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- API Auto Scaling group ---------------------------------------------------------------------

# Target tracking holds 70 %: a sustained 85 % means it cannot add instances (at asg_max_size).
resource "aws_cloudwatch_metric_alarm" "asg_cpu_high" {
  alarm_name          = "${var.name}-asg-cpu-high"
  alarm_description   = "Outgrow: the API instances' average CPU above 85 % for 15 min (at asg_max_size?). Runbook: ${local.runbook.cpu_saturation}"
  namespace           = "AWS/EC2"
  metric_name         = "CPUUtilization"
  dimensions          = { AutoScalingGroupName = aws_autoscaling_group.api.name }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 15
  datapoints_to_alarm = 15
  comparison_operator = "GreaterThanThreshold"
  threshold           = 85
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- RDS ----------------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "rds_cpu_high" {
  for_each = local.db_instances

  alarm_name          = "${var.name}-rds-${each.key}-cpu-high"
  alarm_description   = "Outgrow: RDS ${each.value} CPU above 80 % for 15 min. Runbook: ${local.runbook.high_latency}"
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBInstanceIdentifier = each.value }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 15
  datapoints_to_alarm = 15
  comparison_operator = "GreaterThanThreshold"
  threshold           = 80
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "rds_free_storage_low" {
  for_each = local.db_instances

  alarm_name          = "${var.name}-rds-${each.key}-free-storage-low"
  alarm_description   = "Outgrow: RDS ${each.value} has less than ${var.db_free_storage_alarm_gib} GiB free (storage autoscaling at its ceiling?). Runbook: ${local.runbook.storage}"
  namespace           = "AWS/RDS"
  metric_name         = "FreeStorageSpace"
  dimensions          = { DBInstanceIdentifier = each.value }
  statistic           = "Minimum"
  period              = 300
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  comparison_operator = "LessThanThreshold"
  threshold           = var.db_free_storage_alarm_gib * 1024 * 1024 * 1024
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Outgrow skips a replica more than replica_max_lag (1 s) behind; a replica 30 s behind for
# 5 minutes is out of rotation and its reads are on the others or the primary.
resource "aws_cloudwatch_metric_alarm" "rds_replica_lag" {
  for_each = local.db_replicas

  alarm_name          = "${var.name}-rds-${each.key}-replica-lag"
  alarm_description   = "Outgrow: RDS read replica ${each.value} more than 30 s behind the primary for 5 min. Runbook: ${local.runbook.replica}"
  namespace           = "AWS/RDS"
  metric_name         = "ReplicaLag"
  dimensions          = { DBInstanceIdentifier = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = 30
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- Redis --------------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "redis_cpu_high" {
  for_each = local.redis_nodes

  alarm_name          = "${var.name}-redis-${each.key}-cpu-high"
  alarm_description   = "Outgrow: Redis ${each.value} engine CPU above 80 % for 10 min. Runbook: ${local.runbook.redis}"
  namespace           = "AWS/ElastiCache"
  metric_name         = "EngineCPUUtilization"
  dimensions          = { CacheClusterId = each.value }
  statistic           = "Average"
  period              = 60
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  comparison_operator = "GreaterThanThreshold"
  threshold           = 80
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

resource "aws_cloudwatch_metric_alarm" "redis_memory_high" {
  for_each = local.redis_nodes

  alarm_name          = "${var.name}-redis-${each.key}-memory-high"
  alarm_description   = "Outgrow: Redis ${each.value} above 85 % of maxmemory for 10 min (evictions next). Runbook: ${local.runbook.redis}"
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  dimensions          = { CacheClusterId = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 10
  datapoints_to_alarm = 10
  comparison_operator = "GreaterThanThreshold"
  threshold           = 85
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Evictions drop cache entries and, worse, sessions and rate-limit windows: any at all means
# the node is too small.
resource "aws_cloudwatch_metric_alarm" "redis_evictions" {
  for_each = local.redis_nodes

  alarm_name          = "${var.name}-redis-${each.key}-evictions"
  alarm_description   = "Outgrow: Redis ${each.value} is evicting keys (sessions, rate limits, cache) for lack of memory. Runbook: ${local.runbook.redis}"
  namespace           = "AWS/ElastiCache"
  metric_name         = "Evictions"
  dimensions          = { CacheClusterId = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# Names and values derived once and shared by the other files.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  state = "available"

  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  # Three AZs: the subnets, NAT gateways, instances, the RDS standby and replicas, Redis nodes.
  azs = slice(data.aws_availability_zones.available.names, 0, 3)

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  bucket_name = coalesce(var.bucket_name, "${var.name}-objects-${local.account_id}-${var.region}")

  # The drain, end to end: /readyz answers 503 for shutdown_delay, then in-flight requests get
  # shutdown_timeout. The target group keeps a deregistering instance's connections this long,
  # the ASG waits for it before terminating, and docker/systemd give the container as long.
  drain_seconds = var.shutdown_delay_seconds + var.shutdown_timeout_seconds

  # SSM Parameter Store path of the secrets put in by hand (OUTGROW_SMTP_URL, OUTGROW_SENTRY_DSN,
  # …): each parameter's last path segment is the environment variable's name.
  ssm_env_path = "/${var.name}/env"

  # CloudWatch Logs groups of the containers.
  log_group_api    = "/${var.name}/api"
  log_group_worker = "/${var.name}/worker"

  # Non-secret configuration of every instance (rendered into user data). Secrets — database
  # and Redis URLs, JWT keys, SMTP, Sentry — are read at each start from Secrets Manager and
  # SSM Parameter Store (templates/user-data.sh.tftpl).
  app_environment = merge(var.extra_environment, {
    OUTGROW_LISTEN             = "0.0.0.0:8080"
    OUTGROW_LOG_FORMAT         = "json"
    OUTGROW_AUTO_MIGRATE       = "false"
    OUTGROW_TRUSTED_PROXIES    = var.vpc_cidr
    OUTGROW_SHUTDOWN_DELAY     = "${var.shutdown_delay_seconds}s"
    OUTGROW_SHUTDOWN_TIMEOUT   = "${var.shutdown_timeout_seconds}s"
    OUTGROW_OBJECT_STORE_URL   = "s3://${local.bucket_name}"
    AWS_REGION                 = var.region
    OUTGROW_PUBLIC_URL         = var.public_url
    OUTGROW_SENTRY_ENVIRONMENT = var.environment
  })

  # Where alarms' descriptions point (docs/operations.md sections; deploy/terraform/README.md
  # for the ones that are AWS-only).
  runbook = {
    high_latency    = "${var.runbook_base_url}#high-latency"
    high_error_rate = "${var.runbook_base_url}#high-error-rate"
    cpu_saturation  = "${var.runbook_base_url}#cpu-saturation"
    instance_down   = "${var.runbook_base_url}#instance-down"
    replica         = "${var.runbook_base_url}#replica-failover"
    redis           = "${var.runbook_base_url}#redis-loss"
    storage         = "${replace(var.runbook_base_url, "docs/operations.md", "deploy/terraform/README.md")}#alarms"
  }
}

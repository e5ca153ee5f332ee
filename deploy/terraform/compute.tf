# The instances: Amazon Linux 2023, Docker, one systemd unit running the Outgrow image —
# `serve --no-workers` behind the load balancer (api) and `worker` (worker). Launch templates
# require IMDSv2 and encrypt the gp3 root volume; the Auto Scaling groups replace instances
# one refresh at a time when the launch template changes (a new image_tag, AMI or setting).

data "aws_ssm_parameter" "al2023_ami" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${var.architecture}"
}

locals {
  ami_id = coalesce(var.ami_id, data.aws_ssm_parameter.al2023_ami.insecure_value)

  # The template's inputs (templates/user-data.sh.tftpl): shared, then per role. None is a
  # secret — user data is readable by anyone who can describe the launch template.
  user_data_common = {
    image             = "${var.image}:${var.image_tag}"
    image_repository  = var.image
    environment       = local.app_environment
    secret_arns       = [aws_secretsmanager_secret.app_env.arn, aws_secretsmanager_secret.jwt_keys.arn]
    ssm_env_path      = local.ssm_env_path
    region            = var.region
    rds_ca_bundle_url = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
    stop_timeout      = local.drain_seconds + 5
  }

  user_data_roles = {
    api = {
      role      = "api"
      command   = "serve --no-workers"
      log_group = aws_cloudwatch_log_group.api.name
      # The API needs no SMTP: mail is sent by the workers.
      required_settings = ["OUTGROW_DATABASE_URL", "OUTGROW_REDIS_URL", "OUTGROW_JWT_KEYS"]
      # Schema changes are applied by the workers before they start (and by the deploy step).
      migrate_before_start = false
    }
    worker = {
      role                 = "worker"
      command              = "worker"
      log_group            = aws_cloudwatch_log_group.worker.name
      required_settings    = ["OUTGROW_DATABASE_URL", "OUTGROW_REDIS_URL", "OUTGROW_JWT_KEYS", "OUTGROW_SMTP_URL"]
      migrate_before_start = true
    }
  }

  # Tags of the instances and their volumes (default_tags do not reach launch template tags).
  instance_tags = merge(
    {
      Project     = "outgrow"
      Stack       = var.name
      Environment = var.environment
      ManagedBy   = "terraform"
      ImageTag    = var.image_tag
    },
    var.tags,
  )
}

# --- API ----------------------------------------------------------------------------------------

resource "aws_launch_template" "api" {
  name                   = "${var.name}-api"
  description            = "Outgrow API: ${var.image}:${var.image_tag} serve --no-workers"
  image_id               = local.ami_id
  instance_type          = var.api_instance_type
  vpc_security_group_ids = [aws_security_group.api.id]
  update_default_version = true

  user_data = base64encode(templatefile("${path.module}/templates/user-data.sh.tftpl", merge(local.user_data_common, local.user_data_roles["api"])))

  iam_instance_profile {
    arn = aws_iam_instance_profile.app.arn
  }

  # IMDSv2 only. Hop limit 1 is enough: the container shares the host's network namespace.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size_gib
      encrypted             = true
      delete_on_termination = true
    }
  }

  # 1-minute CPU metrics: target tracking and the CPU alarm react within minutes.
  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.instance_tags, { Name = "${var.name}-api", Role = "api" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.instance_tags, { Name = "${var.name}-api", Role = "api" })
  }
}

resource "aws_autoscaling_group" "api" {
  name                = "${var.name}-api"
  min_size            = var.asg_min_size
  max_size            = var.asg_max_size
  vpc_zone_identifier = aws_subnet.private[*].id
  target_group_arns   = [aws_lb_target_group.api.arn]

  # Replace an instance that fails /readyz (after the boot's grace period), not only a dead one.
  health_check_type         = "ELB"
  health_check_grace_period = var.health_check_grace_period_seconds
  default_instance_warmup   = var.health_check_grace_period_seconds
  wait_for_capacity_timeout = "15m"

  termination_policies = ["OldestLaunchTemplate", "OldestInstance"]
  enabled_metrics      = [
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupMaxSize",
    "GroupMinSize",
    "GroupPendingInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
  ]

  launch_template {
    id      = aws_launch_template.api.id
    version = aws_launch_template.api.latest_version
  }

  # Rolling deploys: a new launch template version (image_tag, AMI, settings) starts a refresh
  # that launches the new instances first (up to 200 %) and never drops below 100 % healthy; an
  # old instance is deregistered and drained (deregistration_delay) before it terminates. A
  # refresh that fails rolls back to the previous version.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
      skip_matching          = true
      auto_rollback          = true
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-api"
    propagate_at_launch = true
  }

  tag {
    key                 = "Role"
    value               = "api"
    propagate_at_launch = true
  }

  # The first instances need their secrets, a way out (image pull, AWS APIs) and their role.
  depends_on = [
    aws_secretsmanager_secret_version.app_env,
    aws_secretsmanager_secret_version.jwt_keys,
    aws_route.private_nat,
    aws_iam_role_policy.app,
    aws_vpc_security_group_egress_rule.app_https,
  ]

  lifecycle {
    # desired_capacity belongs to target tracking and the schedule.
    ignore_changes = [desired_capacity]
  }
}

# Hold the API's average CPU at cpu_target_percent (70 %) between asg_min_size and asg_max_size.
resource "aws_autoscaling_policy" "api_cpu" {
  name                   = "${var.name}-api-cpu-target"
  autoscaling_group_name = aws_autoscaling_group.api.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }

    target_value = var.cpu_target_percent
  }
}

# Business hours: start the day with asg_business_hours_min_size warm instances instead of
# waiting for the morning peak to push CPU up; in the evening let target tracking scale in to
# asg_min_size. desired_capacity -1 leaves the current count alone.
resource "aws_autoscaling_schedule" "api_business_hours_start" {
  count = var.scheduled_scaling_enabled ? 1 : 0

  scheduled_action_name  = "${var.name}-api-business-hours-start"
  autoscaling_group_name = aws_autoscaling_group.api.name
  recurrence             = var.business_hours_start_cron
  time_zone              = var.schedule_time_zone
  min_size               = var.asg_business_hours_min_size
  max_size               = var.asg_max_size
  desired_capacity       = -1
}

resource "aws_autoscaling_schedule" "api_business_hours_end" {
  count = var.scheduled_scaling_enabled ? 1 : 0

  scheduled_action_name  = "${var.name}-api-business-hours-end"
  autoscaling_group_name = aws_autoscaling_group.api.name
  recurrence             = var.business_hours_end_cron
  time_zone              = var.schedule_time_zone
  min_size               = var.asg_min_size
  max_size               = var.asg_max_size
  desired_capacity       = -1
}

# --- Workers --------------------------------------------------------------------------------------

resource "aws_launch_template" "worker" {
  name                   = "${var.name}-worker"
  description            = "Outgrow workers: ${var.image}:${var.image_tag} worker"
  image_id               = local.ami_id
  instance_type          = var.worker_instance_type
  vpc_security_group_ids = [aws_security_group.worker.id]
  update_default_version = true

  user_data = base64encode(templatefile("${path.module}/templates/user-data.sh.tftpl", merge(local.user_data_common, local.user_data_roles["worker"])))

  iam_instance_profile {
    arn = aws_iam_instance_profile.app.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size_gib
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.instance_tags, { Name = "${var.name}-worker", Role = "worker" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.instance_tags, { Name = "${var.name}-worker", Role = "worker" })
  }
}

resource "aws_autoscaling_group" "worker" {
  name                = "${var.name}-worker"
  min_size            = var.worker_min_size
  max_size            = var.worker_max_size
  vpc_zone_identifier = aws_subnet.private[*].id

  # No load balancer: a worker is healthy while its instance is (systemd restarts the container).
  health_check_type         = "EC2"
  health_check_grace_period = var.health_check_grace_period_seconds
  default_instance_warmup   = var.health_check_grace_period_seconds
  wait_for_capacity_timeout = "15m"

  termination_policies = ["OldestLaunchTemplate", "OldestInstance"]
  enabled_metrics      = [
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupMaxSize",
    "GroupMinSize",
    "GroupTotalInstances",
  ]

  launch_template {
    id      = aws_launch_template.worker.id
    version = aws_launch_template.worker.latest_version
  }

  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
      skip_matching          = true
      auto_rollback          = true
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-worker"
    propagate_at_launch = true
  }

  tag {
    key                 = "Role"
    value               = "worker"
    propagate_at_launch = true
  }

  depends_on = [
    aws_secretsmanager_secret_version.app_env,
    aws_secretsmanager_secret_version.jwt_keys,
    aws_route.private_nat,
    aws_iam_role_policy.app,
    aws_vpc_security_group_egress_rule.app_https,
  ]

  lifecycle {
    ignore_changes = [desired_capacity]
  }
}

resource "aws_autoscaling_policy" "worker_cpu" {
  name                   = "${var.name}-worker-cpu-target"
  autoscaling_group_name = aws_autoscaling_group.worker.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }

    target_value = var.cpu_target_percent
  }
}

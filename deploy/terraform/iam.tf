# The instances' role: exactly what Outgrow and its boot script use — the objects bucket, its
# own secrets and SSM parameters, its own log groups — and Session Manager when enabled.
# Plus the role RDS Enhanced Monitoring publishes with.

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "app" {
  name               = "${var.name}-app"
  description        = "Outgrow API and worker instances"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_instance_profile" "app" {
  name = "${var.name}-app"
  role = aws_iam_role.app.name
}

data "aws_iam_policy_document" "app" {
  # Uploads and exports: object_store's S3 client (credentials from the instance profile
  # through IMDSv2). ListBucket lets a missing key answer 404 instead of 403.
  statement {
    sid       = "ListObjectsBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.objects.arn]
  }

  statement {
    sid     = "ReadWriteObjects"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.objects.arn}/*"]
  }

  # The boot script's secrets: the generated ones in Secrets Manager…
  statement {
    sid       = "ReadOwnSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [
      aws_secretsmanager_secret.app_env.arn,
      aws_secretsmanager_secret.jwt_keys.arn,
    ]
  }

  # …and the ones put in by hand under /<name>/env/ (SecureString with the aws/ssm key: its key
  # policy already lets the account's principals decrypt through SSM).
  statement {
    sid       = "ReadOwnParameters"
    actions   = ["ssm:GetParametersByPath"]
    resources = [
      "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter${local.ssm_env_path}",
      "arn:${local.partition}:ssm:${var.region}:${local.account_id}:parameter${local.ssm_env_path}/*",
    ]
  }

  # The containers' JSON logs (Docker's awslogs driver; the groups are created by Terraform).
  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "${aws_cloudwatch_log_group.api.arn}:*",
      "${aws_cloudwatch_log_group.worker.arn}:*",
    ]
  }
}

resource "aws_iam_role_policy" "app" {
  name   = "outgrow"
  role   = aws_iam_role.app.id
  policy = data.aws_iam_policy_document.app.json
}

resource "aws_iam_role_policy_attachment" "app_ssm" {
  count = var.enable_ssm_session_manager ? 1 : 0

  role       = aws_iam_role.app.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

# RDS Enhanced Monitoring (OS metrics every db_monitoring_interval_seconds).
data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  count = var.db_monitoring_interval_seconds > 0 ? 1 : 0

  name               = "${var.name}-rds-monitoring"
  description        = "RDS Enhanced Monitoring of the Outgrow database"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count = var.db_monitoring_interval_seconds > 0 ? 1 : 0

  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

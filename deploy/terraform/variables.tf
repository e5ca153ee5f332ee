# Every input of the stack. Required: region, certificate_arn, image_tag, public_url (see
# terraform.tfvars.example). Secrets are never inputs: the database password, the Redis AUTH
# token and the first JWT key are generated into Secrets Manager; SMTP and Sentry are put in
# SSM Parameter Store by hand (README.md, "Secrets").

# --- General ------------------------------------------------------------------------------

variable "region" {
  description = "AWS region to deploy into (e.g. eu-west-1). Must have at least 3 availability zones."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must be an AWS region name such as eu-west-1."
  }
}

variable "name" {
  description = "Prefix of every resource name (the RDS primary is <name>-primary). Use one per stack, e.g. outgrow or outgrow-staging."
  type        = string
  default     = "outgrow"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "The name must be 3-20 characters of lower-case letters, digits and hyphens, starting with a letter (it prefixes target group and bucket names, which are length-limited)."
  }
}

variable "environment" {
  description = "Environment label: the Environment tag and OUTGROW_SENTRY_ENVIRONMENT."
  type        = string
  default     = "production"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.environment))
    error_message = "The environment must be lower-case letters, digits and hyphens."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

# --- Network ------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC (a /16 or larger). Also OUTGROW_TRUSTED_PROXIES: the ALB's nodes live in it."
  type        = string
  default     = "10.20.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) <= 16, false)
    error_message = "The vpc_cidr must be an IPv4 CIDR with a prefix of /16 or shorter."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per availability zone (true: an AZ outage leaves the others' egress intact) or a single shared one (false: cheaper, about 2 x 32 USD/month less, but a single point of failure for image pulls, AWS APIs and SMTP)."
  type        = bool
  default     = true
}

variable "allowed_ingress_cidrs" {
  description = "CIDRs allowed to reach the load balancer on 80 and 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.allowed_ingress_cidrs) > 0 && alltrue([for c in var.allowed_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "The allowed_ingress_cidrs must be a non-empty list of IPv4 CIDRs."
  }
}

# --- Load balancer --------------------------------------------------------------------------

variable "certificate_arn" {
  description = "ARN of the ACM certificate (in this region) the HTTPS listener presents, covering the host name of public_url."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "The certificate_arn must be an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "alb_deletion_protection" {
  description = "Protect the load balancer from deletion (turn off before a deliberate terraform destroy)."
  type        = bool
  default     = true
}

# --- The application ------------------------------------------------------------------------

variable "image" {
  description = "Container image repository of Outgrow (without tag)."
  type        = string
  default     = "ghcr.io/outgrow/outgrow"
}

variable "image_tag" {
  description = "Image tag to run, e.g. v1.4.2 or a commit SHA. Changing it rolls both Auto Scaling groups (instance refresh). Never latest: a deploy must be a change Terraform can see."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "The image_tag must be a valid, pinned image tag (not latest)."
  }
}

variable "public_url" {
  description = "Public base URL of the store (OUTGROW_PUBLIC_URL, used in e-mailed links), e.g. https://shop.example.com. Point its DNS at the load balancer (output alb_dns_name / alb_zone_id)."
  type        = string

  validation {
    condition     = can(regex("^https://[^/]+$", var.public_url))
    error_message = "The public_url must be https://<host> without a trailing slash or path."
  }
}

variable "shutdown_delay_seconds" {
  description = "OUTGROW_SHUTDOWN_DELAY: after SIGTERM, /readyz answers 503 this long before the listener closes. Must exceed the target group's detection time (2 failed checks 5 s apart = 10 s)."
  type        = number
  default     = 15

  validation {
    condition     = var.shutdown_delay_seconds >= 11 && var.shutdown_delay_seconds <= 120
    error_message = "The shutdown_delay_seconds must be between 11 (above the 10 s the load balancer needs to see a 503) and 120."
  }
}

variable "shutdown_timeout_seconds" {
  description = "OUTGROW_SHUTDOWN_TIMEOUT: in-flight requests get this long after the listener closes. The target group's deregistration delay is shutdown_delay_seconds + this."
  type        = number
  default     = 30

  validation {
    condition     = var.shutdown_timeout_seconds >= 1 && var.shutdown_timeout_seconds <= 300
    error_message = "The shutdown_timeout_seconds must be between 1 and 300."
  }
}

variable "database_tls_mode" {
  description = "sslmode of OUTGROW_DATABASE_URL and the replica URLs. verify-full checks the RDS certificate against the RDS CA bundle that user data downloads; require only encrypts."
  type        = string
  default     = "verify-full"

  validation {
    condition     = contains(["require", "verify-ca", "verify-full"], var.database_tls_mode)
    error_message = "The database_tls_mode must be require, verify-ca or verify-full (the parameter group sets rds.force_ssl = 1)."
  }
}

variable "smtp_port" {
  description = "TCP port of the SMTP server in OUTGROW_SMTP_URL (the instances' only egress besides HTTPS, PostgreSQL and Redis)."
  type        = number
  default     = 587

  validation {
    condition     = contains([25, 465, 587, 2465, 2587], var.smtp_port)
    error_message = "The smtp_port must be 25, 465, 587, 2465 or 2587."
  }
}

variable "extra_environment" {
  description = "Further non-secret OUTGROW_* settings for every instance, e.g. { OUTGROW_MAIL_FROM = \"Shop <no-reply@example.com>\" }. Secrets go to SSM Parameter Store instead (README.md, \"Secrets\")."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : can(regex("^OUTGROW_[A-Z0-9_]+$", k))])
    error_message = "The extra_environment keys must be OUTGROW_* setting names."
  }

  validation {
    condition     = alltrue([for k in keys(var.extra_environment) : !can(regex("(URL|URLS|KEYS|DSN|PASSWORD|SECRET|TOKEN)$", k))])
    error_message = "The extra_environment must not carry URLs with credentials, keys, DSNs, passwords or tokens: put them in SSM Parameter Store."
  }
}

# --- Instances and Auto Scaling -----------------------------------------------------------

variable "architecture" {
  description = "CPU architecture of the instances and the AMI (x86_64 or arm64); the image must be published for it and the instance types must match."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "The architecture must be x86_64 or arm64."
  }
}

variable "ami_id" {
  description = "AMI for the instances; null = the latest Amazon Linux 2023 (read from SSM at plan time: a newer AMI rolls the groups on the next apply)."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "The ami_id must be null or an AMI id (ami-...)."
  }
}

variable "api_instance_type" {
  description = "Instance type of the API (outgrow serve --no-workers). CPU-bound on sign-ins (Argon2)."
  type        = string
  default     = "c7i.large"
}

variable "worker_instance_type" {
  description = "Instance type of the workers (outgrow worker)."
  type        = string
  default     = "t3.medium"
}

variable "root_volume_size_gib" {
  description = "Size of each instance's encrypted gp3 root volume, in GiB (the OS, Docker and the image)."
  type        = number
  default     = 20

  validation {
    condition     = var.root_volume_size_gib >= 8 && var.root_volume_size_gib <= 200
    error_message = "The root_volume_size_gib must be between 8 and 200."
  }
}

variable "asg_min_size" {
  description = "Fewest API instances (at night and at weekends). At least 2, in different AZs: one can be replaced or lost without an outage."
  type        = number
  default     = 2

  validation {
    condition     = var.asg_min_size >= 2
    error_message = "The asg_min_size must be at least 2 (the API must survive the loss of an instance)."
  }
}

variable "asg_max_size" {
  description = "Most API instances target tracking may scale out to (docs/operations.md, CPU saturation)."
  type        = number
  default     = 10

  validation {
    condition     = var.asg_max_size >= var.asg_min_size && var.asg_max_size <= 100
    error_message = "The asg_max_size must be at least asg_min_size and at most 100."
  }
}

variable "asg_business_hours_min_size" {
  description = "Minimum API instances during business hours (the scheduled scale-up); target tracking may still add more."
  type        = number
  default     = 4

  validation {
    condition     = var.asg_business_hours_min_size >= var.asg_min_size && var.asg_business_hours_min_size <= var.asg_max_size
    error_message = "The asg_business_hours_min_size must be between asg_min_size and asg_max_size."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation the API (and worker) groups' target tracking holds."
  type        = number
  default     = 70

  validation {
    condition     = var.cpu_target_percent >= 20 && var.cpu_target_percent <= 90
    error_message = "The cpu_target_percent must be between 20 and 90."
  }
}

variable "health_check_grace_period_seconds" {
  description = "Seconds after launch before a failing load balancer health check gets an API instance replaced (boot, image pull, start)."
  type        = number
  default     = 180

  validation {
    condition     = var.health_check_grace_period_seconds >= 60 && var.health_check_grace_period_seconds <= 900
    error_message = "The health_check_grace_period_seconds must be between 60 and 900."
  }
}

variable "scheduled_scaling_enabled" {
  description = "Raise the API's minimum to asg_business_hours_min_size at business_hours_start_cron and lower it back at business_hours_end_cron."
  type        = bool
  default     = true
}

variable "business_hours_start_cron" {
  description = "Cron (min hour dom month dow, in schedule_time_zone) of the business-hours scale-up."
  type        = string
  default     = "0 7 * * MON-FRI"

  validation {
    condition     = length(split(" ", var.business_hours_start_cron)) == 5
    error_message = "The business_hours_start_cron must have 5 space-separated fields."
  }
}

variable "business_hours_end_cron" {
  description = "Cron (min hour dom month dow, in schedule_time_zone) of the evening scale-down to asg_min_size."
  type        = string
  default     = "0 20 * * MON-FRI"

  validation {
    condition     = length(split(" ", var.business_hours_end_cron)) == 5
    error_message = "The business_hours_end_cron must have 5 space-separated fields."
  }
}

variable "schedule_time_zone" {
  description = "IANA time zone of the scheduled scaling actions, e.g. Europe/Berlin."
  type        = string
  default     = "Etc/UTC"
}

variable "worker_min_size" {
  description = "Fewest worker instances (outgrow worker). Jobs survive a worker's loss: its claims return to the queue after job_lease."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_min_size >= 1
    error_message = "The worker_min_size must be at least 1: nothing else runs the job queue."
  }
}

variable "worker_max_size" {
  description = "Most worker instances."
  type        = number
  default     = 4

  validation {
    condition     = var.worker_max_size >= var.worker_min_size
    error_message = "The worker_max_size must be at least worker_min_size."
  }
}

variable "enable_ssm_session_manager" {
  description = "Attach AmazonSSMManagedInstanceCore: shell access through Session Manager and Run Command (the migrate step), instead of SSH (no key pair, no port 22)."
  type        = bool
  default     = true
}

# --- PostgreSQL (RDS) -----------------------------------------------------------------------

variable "postgres_version" {
  description = "PostgreSQL major (or major.minor) version of RDS; minor upgrades apply in the maintenance window."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?$", var.postgres_version)) && try(tonumber(split(".", var.postgres_version)[0]) >= 15, false)
    error_message = "The postgres_version must be 15 or later, e.g. 16 or 16.4."
  }
}

variable "db_instance_class" {
  description = "Instance class of the primary (and its Multi-AZ standby)."
  type        = string
  default     = "db.m6g.large"
}

variable "db_replica_instance_class" {
  description = "Instance class of each read replica."
  type        = string
  default     = "db.m6g.large"
}

variable "db_replica_count" {
  description = "Read replicas of the primary (OUTGROW_DATABASE_REPLICA_URLS), spread over the AZs."
  type        = number
  default     = 2

  validation {
    condition     = var.db_replica_count >= 0 && var.db_replica_count <= 5
    error_message = "The db_replica_count must be between 0 and 5."
  }
}

variable "db_allocated_storage_gib" {
  description = "Initial gp3 storage of the primary, in GiB."
  type        = number
  default     = 100

  validation {
    condition     = var.db_allocated_storage_gib >= 20
    error_message = "The db_allocated_storage_gib must be at least 20."
  }
}

variable "db_max_allocated_storage_gib" {
  description = "Storage autoscaling ceiling, in GiB."
  type        = number
  default     = 1000

  validation {
    condition     = var.db_max_allocated_storage_gib >= var.db_allocated_storage_gib
    error_message = "The db_max_allocated_storage_gib must be at least db_allocated_storage_gib."
  }
}

variable "db_backup_retention_days" {
  description = "Days of automated backups, i.e. the point-in-time-restore window."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "The db_backup_retention_days must be between 1 and 35 (0 would turn off backups, PITR and replicas)."
  }
}

variable "db_performance_insights_retention_days" {
  description = "Days of Performance Insights history (7 is free; 731 or a multiple of 31 are paid)."
  type        = number
  default     = 7

  validation {
    condition     = var.db_performance_insights_retention_days == 7 || var.db_performance_insights_retention_days == 731 || (var.db_performance_insights_retention_days % 31 == 0 && var.db_performance_insights_retention_days <= 713)
    error_message = "The db_performance_insights_retention_days must be 7, 731 or a multiple of 31."
  }
}

variable "db_monitoring_interval_seconds" {
  description = "Enhanced Monitoring interval (0 turns it off)."
  type        = number
  default     = 60

  validation {
    condition     = contains([0, 1, 5, 10, 15, 30, 60], var.db_monitoring_interval_seconds)
    error_message = "The db_monitoring_interval_seconds must be one of 0, 1, 5, 10, 15, 30, 60."
  }
}

variable "db_free_storage_alarm_gib" {
  description = "Alarm when an RDS instance's free storage falls below this many GiB."
  type        = number
  default     = 10

  validation {
    condition     = var.db_free_storage_alarm_gib >= 1
    error_message = "The db_free_storage_alarm_gib must be at least 1."
  }
}

# --- Redis (ElastiCache) ------------------------------------------------------------------

variable "redis_engine_version" {
  description = "Redis OSS engine version of ElastiCache (7.x: in-transit encryption can be changed in place)."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.redis_engine_version))
    error_message = "The redis_engine_version must be a 7.x version such as 7.1."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.m7g.large"
}

variable "redis_num_cache_clusters" {
  description = "Redis nodes: one primary and the rest replicas, in different AZs (at least 2 for automatic failover)."
  type        = number
  default     = 2

  validation {
    condition     = var.redis_num_cache_clusters >= 2 && var.redis_num_cache_clusters <= 6
    error_message = "The redis_num_cache_clusters must be between 2 (automatic failover needs a replica) and 6."
  }
}

variable "redis_snapshot_retention_days" {
  description = "Days of daily Redis snapshots (sessions survive the loss of every node); 0 turns them off."
  type        = number
  default     = 1

  validation {
    condition     = var.redis_snapshot_retention_days >= 0 && var.redis_snapshot_retention_days <= 35
    error_message = "The redis_snapshot_retention_days must be between 0 and 35."
  }
}

# --- Object storage (S3) ------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the uploads/exports bucket (OUTGROW_OBJECT_STORE_URL=s3://<name>); null = <name>-objects-<account id>-<region>."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "The bucket_name must be a valid S3 bucket name."
  }
}

variable "export_retention_days" {
  description = "Days after which data exports (exports/ in the bucket) are deleted. Their download links live 24 h (OUTGROW_EXPORT_LINK_TTL)."
  type        = number
  default     = 7

  validation {
    condition     = var.export_retention_days >= 2
    error_message = "The export_retention_days must be at least 2 (longer than the 24 h download link)."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days a replaced or deleted object's previous version is kept (the restore window for uploads)."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "The noncurrent_version_retention_days must be at least 1."
  }
}

variable "incomplete_multipart_upload_days" {
  description = "Days after which incomplete multipart uploads (a crashed export or upload) are aborted and their parts deleted."
  type        = number
  default     = 7

  validation {
    condition     = var.incomplete_multipart_upload_days >= 1
    error_message = "The incomplete_multipart_upload_days must be at least 1."
  }
}

# --- Monitoring -----------------------------------------------------------------------------

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm the subscription)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "The alarm_emails must be e-mail addresses."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (the instances' JSON logs, Redis slow log, PostgreSQL log)."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "runbook_base_url" {
  description = "URL of docs/operations.md; each alarm's description links to its runbook section there."
  type        = string
  default     = "https://github.com/outgrow/outgrow/blob/main/docs/operations.md"
}

# Terraform and provider versions, the provider's defaults, and (commented) the remote state.

terraform {
  # 1.9: a variable's validation may refer to other variables (asg_business_hours_min_size).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Remote state: S3 with a DynamoDB lock table (create both once, by hand or in a bootstrap
  # stack; the bucket versioned and encrypted — the state holds the generated database password
  # and Redis token). Uncomment, fill in, then `terraform init -migrate-state`.
  #
  # backend "s3" {
  #   bucket         = "acme-terraform-state"
  #   key            = "outgrow/production/terraform.tfstate"
  #   region         = "eu-west-1"
  #   dynamodb_table = "terraform-locks"
  #   encrypt        = true
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(
      {
        Project     = "outgrow"
        Stack       = var.name
        Environment = var.environment
        ManagedBy   = "terraform"
      },
      var.tags,
    )
  }
}

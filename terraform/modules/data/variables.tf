variable "project_id" {
  type        = string
  description = "The Google Cloud project."
}

variable "region" {
  type        = string
  description = "Where the portal's data lives (Frankfurt)."
  default     = "europe-west3"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of bucket names (bucket names are global)."
}

variable "kms_key_name" {
  type        = string
  description = "Optional Cloud KMS key (CMEK) for the buckets; null: Google-managed keys."
  default     = null
}

variable "project_id" {
  type        = string
  description = "The Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of the functions, queues and scheduler jobs (Frankfurt)."
  default     = "europe-west3"
}

variable "public_base_url" {
  type        = string
  description = "The portal's public base URL (https://webmeeting.example.com), as in meeting links."
}

variable "buckets" {
  type        = map(string)
  description = "Bucket names from the data module: raw_recordings, recordings, files, sources."
}

variable "package_dir" {
  type        = string
  description = "Folder with the function zips `make package` builds (<function>.zip, shared core inside)."
}

variable "converters" {
  type        = list(object({ id = string, region = string }))
  description = "The converter jobs (id = Cloud Run job name) the portal chooses from."
}

variable "converter_service_account" {
  type        = string
  description = "Email of the converter jobs' service account (the tasks function starts executions as it)."
}

variable "ops_email" {
  type        = string
  description = "The development team's address: conversion failures are mailed and alerted here."
}

variable "smtp_host" {
  type        = string
  description = "SMTP relay the platform sends mail through."
}

variable "smtp_port" {
  type        = number
  description = "SMTP relay port (587: STARTTLS)."
  default     = 587
}

variable "mail_from" {
  type        = string
  description = "Sender address of the platform's mails."
}

variable "dns_server" {
  type        = string
  description = "Resolver for the daily PBX DNS checks (host[:port]); empty: the runtime's resolver."
  default     = ""
}

variable "function_max_instances" {
  type        = number
  description = "Upper bound of instances per function."
  default     = 20
}

variable "mcus" {
  type = map(object({
    url       = string
    region    = string
    latitude  = number
    longitude = number
    capacity  = number
    turn_urls = list(string)
    account   = string
  }))
  description = "The MCU registry (MCU id => its URL, region, location, capacity, TURN URLs and service account), from the MCU modules."
}

variable "mcu_accounts" {
  type        = map(string)
  description = "Each MCU group's service account by region (keys known at plan time): they may read the join-token public key."
}

variable "console_members" {
  type        = list(string)
  description = "Who may pass Identity-Aware Proxy to the operator console, as IAM members (\"group:support@example.com\", \"user:ada@example.com\"); each also needs a role in the console (admin CLI: operators add)."
  default     = []
}

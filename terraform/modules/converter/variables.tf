variable "project_id" {
  type        = string
  description = "The Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of this converter (a Cloud Run job)."
}

variable "job_name" {
  type        = string
  description = "The job's name: the converter id the portal knows it by."
}

variable "image" {
  type        = string
  description = "The converter image (built from converter_job/Dockerfile), e.g. europe-west3-docker.pkg.dev/PROJECT/webmeeting/converter:TAG."
}

variable "service_account_email" {
  type        = string
  description = "The converters' service account."
}

variable "env" {
  type        = map(string)
  description = "Settings (the README's configuration table) the job runs with."
}

variable "cpu" {
  type        = string
  description = "vCPUs per execution."
  default     = "2"
}

variable "memory" {
  type        = string
  description = "Memory per execution."
  default     = "4Gi"
}

variable "invoker_service_account" {
  type        = string
  description = "The account that starts executions with arguments (the portal's tasks function)."
}

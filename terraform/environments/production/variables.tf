variable "project_id" {
  type        = string
  description = "The Google Cloud project to deploy into."
}

variable "portal_region" {
  type        = string
  description = "Region of the portal and its data: Frankfurt, as the privacy policy states."
  default     = "europe-west3"
}

variable "name_prefix" {
  type        = string
  description = "Prefix of globally unique names (buckets)."
}

variable "public_base_url" {
  type        = string
  description = "The portal's public base URL (https://webmeeting.example.com)."
}

variable "package_dir" {
  type        = string
  description = "Folder `make package` writes the function and MCU zips to."
  default     = "../../../build/package"
}

variable "mcu_regions" {
  type = list(object({
    region    = string
    size      = number
    latitude  = number
    longitude = number
  }))
  description = "Where MCUs run: region, VM count, and the region's location for the closest-MCU choice."
}

variable "mcu_machine_type" {
  type        = string
  description = "MCU VM machine type."
  default     = "c2d-standard-4"
}

variable "mcu_udp_port_min" {
  type        = number
  description = "First UDP port of the MCUs' media range."
  default     = 40000
}

variable "mcu_udp_port_max" {
  type        = number
  description = "Last UDP port of the MCUs' media range."
  default     = 49999
}

variable "converter_regions" {
  type        = list(string)
  description = "Regions with a converter (a Cloud Run job each)."
}

variable "converter_image" {
  type        = string
  description = "The converter image, built from converter_job/Dockerfile and pushed to Artifact Registry."
}

variable "ops_email" {
  type        = string
  description = "The development team's address (conversion failures)."
}

variable "smtp_host" {
  type        = string
  description = "SMTP relay for the platform's mails."
}

variable "mail_from" {
  type        = string
  description = "Sender of the platform's mails, e.g. WebMeeting <no-reply@example.com>."
}

variable "kms_key_name" {
  type        = string
  description = "Optional CMEK key for the buckets (null: Google-managed)."
  default     = null
}

variable "console_members" {
  type        = list(string)
  description = "Who may pass Identity-Aware Proxy to the operator console (IAM members: \"group:webmeeting-support@example.com\"); each address also needs a role: `python -m webmeeting.cli.admin operators add EMAIL --role support|admin`."
  default     = []
}

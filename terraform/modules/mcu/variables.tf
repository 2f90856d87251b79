variable "project_id" {
  type        = string
  description = "The Google Cloud project."
}

variable "region" {
  type        = string
  description = "Region of this MCU group."
}

variable "name" {
  type        = string
  description = "Short name of the group (the MCU ids are <name>-<n>)."
}

variable "size" {
  type        = number
  description = "MCU VMs in the region (each with a static external IP)."
  default     = 1
}

variable "machine_type" {
  type        = string
  description = "VM machine type (one MCU worker per core)."
  default     = "c2d-standard-4"
}

variable "latitude" {
  type        = number
  description = "Where the region is, for the closest-MCU choice."
}

variable "longitude" {
  type        = number
  description = "Where the region is, for the closest-MCU choice."
}

variable "portal_url" {
  type        = string
  description = "The portal's base URL (heartbeats, participant events, recordings)."
}

variable "package_object" {
  type        = string
  description = "gs://bucket/object of the MCU package zip (`make package`: mcu_vm + the shared core)."
}

variable "raw_bucket" {
  type        = string
  description = "The raw-recordings bucket the MCUs upload to."
}

variable "sources_bucket" {
  type        = string
  description = "The bucket holding the MCU package (read by the VMs at start)."
}

variable "capacity" {
  type        = number
  default     = 400
  description = "Forwarded streams (one publisher's audio or video to one subscriber) one MCU VM takes, about 100 per core (docs/benchmarks.md): its heartbeats may report less, never more."
}

variable "signalling_port" {
  type        = number
  description = "TCP port of the signalling WebSocket (TLS terminated by the MCU's proxy)."
  default     = 443
}

variable "udp_port_min" {
  type        = number
  description = "First UDP port of the media range."
  default     = 40000
}

variable "udp_port_max" {
  type        = number
  description = "Last UDP port of the media range."
  default     = 49999
}

variable "network" {
  type        = string
  description = "VPC network of the MCUs."
  default     = "default"
}

variable "turn_relay_port_min" {
  type        = number
  description = "First UDP port coturn relays on (outside the MCU's media range)."
  default     = 50000
}

variable "turn_relay_port_max" {
  type        = number
  description = "Last UDP port coturn relays on."
  default     = 59999
}

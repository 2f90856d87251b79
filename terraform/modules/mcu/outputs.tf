output "addresses" {
  description = "The MCUs' static external IPs."
  value       = google_compute_address.mcu[*].address
}

output "group" {
  description = "The regional managed instance group."
  value       = google_compute_region_instance_group_manager.mcu.name
}

output "service_account" {
  description = "This group's service account: its VMs' identity (ID tokens naming each instance)."
  value       = google_service_account.mcu.email
}

output "registry" {
  description = "The group's MCUs as the portal's registry knows them (WEBMEETING_MCUS): id => URL, region, location, capacity, account."
  value = {
    for i, address in google_compute_address.mcu[*].address : "${var.name}-${i + 1}" => {
      url       = "wss://${address}.sslip.io/ws"
      region    = var.region
      latitude  = var.latitude
      longitude = var.longitude
      capacity  = var.capacity
      account   = google_service_account.mcu.email
    }
  }
}

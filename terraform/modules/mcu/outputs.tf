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
  description = "The group's MCUs as the portal's registry knows them (WEBMEETING_MCUS): id => URL, region, location, capacity, TURN URLs, account."
  value = {
    for i, address in google_compute_address.mcu[*].address : "${var.name}-${i + 1}" => {
      url       = "wss://${address}.sslip.io/ws"
      region    = var.region
      latitude  = var.latitude
      longitude = var.longitude
      capacity  = var.capacity
      # the coturn on the same VM: UDP and TCP on 3478, TLS on 443 (shared with signalling by SNI)
      turn_urls = ["turn:${address}:3478?transport=udp", "turn:${address}:3478?transport=tcp", "turns:turn.${address}.sslip.io:443?transport=tcp"]
      account   = google_service_account.mcu.email
    }
  }
}

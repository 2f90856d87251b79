output "addresses" {
  description = "The MCUs' static external IPs."
  value       = google_compute_address.mcu[*].address
}

output "group" {
  description = "The regional managed instance group."
  value       = google_compute_region_instance_group_manager.mcu.name
}

output "function_urls" {
  description = "The functions' URLs; point the portal's domain (load balancer) at the public ones."
  value       = module.portal.function_urls
}

output "mcu_addresses" {
  description = "Static external IPs of the MCUs, by region."
  value       = { for r, m in module.mcu : r => m.addresses }
}

output "converters" {
  description = "The converters as WEBMEETING_CONVERTERS lists them."
  value       = [for c in module.converter : c.id]
}

output "buckets" {
  description = "The platform's buckets."
  value       = module.data.buckets
}

output "secrets_to_fill" {
  description = "Secret Manager secrets to give a version before the first deploy (docs/deploy.md)."
  value       = module.portal.secrets
}

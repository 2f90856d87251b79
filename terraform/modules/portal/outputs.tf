output "function_urls" {
  description = "Each function's URL (put the load balancer / domain in front of the public ones)."
  value       = { for k, f in google_cloudfunctions2_function.function : k => f.service_config[0].uri }
}

output "service_accounts" {
  description = "Service account emails by deployable."
  value = merge(
    { for k, a in google_service_account.function : k => a.email },
    { scheduler = google_service_account.scheduler.email, tasks = google_service_account.tasks.email },
  )
}

output "secrets" {
  description = "Secret Manager secrets to fill (gcloud secrets versions add ...) before the first deploy."
  value       = [for s in google_secret_manager_secret.secret : s.secret_id]
}

output "tasks_url" {
  description = "The internal tasks function's own URL: the target and OIDC audience of every task and scheduler job."
  value       = local.tasks_url
}

output "load_balancer_ip" {
  description = "The front door's address: point the public host's A record here (the managed certificate waits for it)."
  value       = google_compute_global_address.edge.address
}

output "console_url" {
  description = "The operator console, behind Identity-Aware Proxy."
  value       = "${var.public_base_url}/console/"
}

output "audit_log_days" {
  description = "How long the operators' audit log is kept (Firestore TTL on audit/expire_at and the retention sweep; from the code's retention table)."
  value       = local.retention.audit_log_days
}

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

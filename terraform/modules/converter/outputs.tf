output "id" {
  description = "The converter id (job name) and region, as WEBMEETING_CONVERTERS lists it."
  value       = "${google_cloud_run_v2_job.converter.name}@${var.region}"
}

output "job" {
  description = "The Cloud Run job's full name."
  value       = google_cloud_run_v2_job.converter.id
}

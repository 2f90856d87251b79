# One converter: a Cloud Run job; the portal starts one execution per recording with its id as
# arguments. No retries here: the portal retries (with backoff, on another converter if need be).

resource "google_cloud_run_v2_job" "converter" {
  project             = var.project_id
  name                = var.job_name
  location            = var.region
  deletion_protection = false

  template {
    task_count  = 1
    parallelism = 1
    template {
      service_account = var.service_account_email
      timeout         = "3600s"
      max_retries     = 0
      containers {
        image = var.image
        resources {
          limits = {
            cpu    = var.cpu
            memory = var.memory
          }
        }
        dynamic "env" {
          for_each = var.env
          content {
            name  = env.key
            value = env.value
          }
        }
        env {
          name  = "WEBMEETING_CONVERTER_ID"
          value = var.job_name
        }
      }
    }
  }
}

resource "google_cloud_run_v2_job_iam_member" "invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_job.converter.name
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = "serviceAccount:${var.invoker_service_account}"
}

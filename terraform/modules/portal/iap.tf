# The operator console behind Identity-Aware Proxy: Google signs operators in on the load
# balancer's /console route; only the addresses and groups in var.console_members get through
# (IAP's httpsResourceAccessor), and the console itself then maps the verified email to a role kept
# in Firestore (support or admin; managed with the admin CLI). IAP's service agent is the only
# invoker of the console's Cloud Run service: no allUsers there.

locals {
  iap_audience = {
    for f in local.iap_functions :
    f => "/projects/${data.google_project.this.number}/global/backendServices/${google_compute_backend_service.function[f].generated_id}"
  }
  iap_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"
  iap_members = merge([
    for f in local.iap_functions : { for m in var.console_members : "${f}-${m}" => { fn = f, member = m } }
  ]...)
}

resource "google_iap_web_backend_service_iam_member" "console" {
  for_each            = local.iap_members
  project             = var.project_id
  web_backend_service = google_compute_backend_service.function[each.value.fn].name
  role                = "roles/iap.httpsResourceAccessor"
  member              = each.value.member
}

resource "google_cloud_run_service_iam_member" "iap_invoker" {
  for_each = local.iap_functions
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function[each.value].service_config[0].service
  role     = "roles/run.invoker"
  member   = local.iap_agent
}

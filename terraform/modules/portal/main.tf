# The portal: one Cloud Function (2nd gen) per function folder, from content-hash-named zips;
# secrets in Secret Manager; Cloud Tasks queues; Cloud Scheduler jobs from the code's job table;
# one service account per deployable with only the roles it needs; 7-day logs and an alert on
# conversion failures.

locals {
  functions = toset(jsondecode(file("${path.module}/../../generated/functions.json")).functions)
  jobs      = jsondecode(file("${path.module}/../../generated/jobs.json"))
  retention = jsondecode(file("${path.module}/../../generated/retention.json"))
  secrets   = toset(["secret-key", "join-token-key", "join-token-public-key", "turn-secret"])
  # which function reads which secret (as WEBMEETING_<NAME>); nothing more
  secret_readers = {
    "secret-key"     = tolist(local.functions)
    "join-token-key" = ["meeting_api"]
    "turn-secret"    = ["meeting_api"] # signs each join's TURN credentials
  }
  # what the MCU VMs read: the key that verifies join tokens, and their coturn's shared secret
  mcu_secret_grants = merge([
    for secret in ["join-token-public-key", "turn-secret"] : { for region, account in var.mcu_accounts : "${region}-${secret}" => { account = account, secret = secret } }
  ]...)
  secret_grants = merge([for secret, fns in local.secret_readers : { for fn in fns : "${fn}-${secret}" => { fn = fn, secret = secret } }]...)

  # Firestore for all; Storage and Tasks only where the code uses them
  bucket_roles = {
    pbx_api_files      = { fn = "pbx_api", bucket = "files", role = "roles/storage.objectAdmin" }
    meeting_api_files  = { fn = "meeting_api", bucket = "files", role = "roles/storage.objectAdmin" }
    mcu_api_files      = { fn = "mcu_api", bucket = "files", role = "roles/storage.objectAdmin" }
    tasks_api_files    = { fn = "tasks_api", bucket = "files", role = "roles/storage.objectAdmin" }
    tasks_api_raw      = { fn = "tasks_api", bucket = "raw_recordings", role = "roles/storage.objectAdmin" }
    tasks_api_rec      = { fn = "tasks_api", bucket = "recordings", role = "roles/storage.objectAdmin" }
    # the operator console reads: an admin's signed link to a recording; it deletes nothing in
    # Storage (a PBX's manual deletion is a task of tasks_api)
    console_rec = { fn = "console", bucket = "recordings", role = "roles/storage.objectViewer" }
  }
  enqueuers = toset(["pbx_api", "meeting_api", "mcu_api", "tasks_api", "console"])
  env = {
    GOOGLE_CLOUD_PROJECT            = var.project_id
    WEBMEETING_PUBLIC_BASE_URL      = var.public_base_url
    WEBMEETING_TRUSTED_PROXY_COUNT  = tostring(local.topology.trusted_proxy_hops) # the load balancer appends client and itself
    WEBMEETING_TASKS_TARGET         = local.tasks_url
    WEBMEETING_TASKS_AUTH           = "iam" # tasks_api: only the tasks and scheduler accounts may invoke it
    WEBMEETING_FILES_BUCKET         = var.buckets["files"]
    WEBMEETING_RAW_BUCKET           = var.buckets["raw_recordings"]
    WEBMEETING_RECORDINGS_BUCKET    = var.buckets["recordings"]
    WEBMEETING_CONVERTERS           = join(",", [for c in var.converters : "${c.id}@${c.region}"])
    WEBMEETING_OPS_EMAIL            = var.ops_email
    WEBMEETING_SMTP_HOST            = var.smtp_host
    WEBMEETING_SMTP_PORT            = tostring(var.smtp_port)
    WEBMEETING_SMTP_FROM            = var.mail_from
    WEBMEETING_SMTP_TLS             = "starttls"
    WEBMEETING_DNS_SERVER           = var.dns_server
    WEBMEETING_TASKS_SERVICE_ACCOUNT = google_service_account.tasks.email
    WEBMEETING_MCUS                  = jsonencode(var.mcus) # MCU identity: mcu_api checks each caller against it
  }
}

# --- service accounts: one per deployable ------------------------------------------------------

resource "google_service_account" "function" {
  for_each     = local.functions
  project      = var.project_id
  account_id   = "fn-${replace(each.value, "_", "-")}"
  display_name = "webmeeting function ${each.value}"
}

resource "google_service_account" "scheduler" {
  project      = var.project_id
  account_id   = "wm-scheduler"
  display_name = "webmeeting Cloud Scheduler jobs (invokes tasks_api)"
}

resource "google_service_account" "tasks" {
  project      = var.project_id
  account_id   = "wm-tasks"
  display_name = "webmeeting Cloud Tasks (invokes tasks_api)"
}

resource "google_project_iam_member" "firestore" {
  for_each = local.functions
  project  = var.project_id
  role     = "roles/datastore.user"
  member   = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_project_iam_member" "enqueuer" {
  for_each = local.enqueuers
  project  = var.project_id
  role     = "roles/cloudtasks.enqueuer"
  member   = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_service_account_iam_member" "act_as_tasks" {
  # enqueuing a task that carries the tasks account's OIDC token means acting as it
  for_each           = local.enqueuers
  service_account_id = google_service_account.tasks.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_storage_bucket_iam_member" "function" {
  for_each = local.bucket_roles
  bucket   = var.buckets[each.value.bucket]
  role     = each.value.role
  member   = "serviceAccount:${google_service_account.function[each.value.fn].email}"
}

resource "google_service_account_iam_member" "sign_urls" {
  # V4 signed URLs are signed with the function's own account (IAM signBlob), nothing else
  for_each           = toset(["meeting_api", "tasks_api", "console"])
  service_account_id = google_service_account.function[each.value].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.function[each.value].email}"
}

resource "google_service_account_iam_member" "run_converter_as" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${var.converter_service_account}"
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.function["tasks_api"].email}"
}

# --- secrets -----------------------------------------------------------------------------------

resource "google_secret_manager_secret" "secret" {
  for_each  = local.secrets
  project   = var.project_id
  secret_id = "webmeeting-${each.value}"
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}

resource "google_secret_manager_secret_iam_member" "function" {
  for_each  = local.secret_grants
  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.function[each.value.fn].email}"
}

resource "google_secret_manager_secret_iam_member" "mcu" {
  # the MCUs read only the public key that verifies join tokens and their coturn's TURN secret
  for_each  = local.mcu_secret_grants
  project   = var.project_id
  secret_id = google_secret_manager_secret.secret[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.account}"
}

# --- functions ---------------------------------------------------------------------------------

resource "google_storage_bucket_object" "source" {
  for_each = local.functions
  bucket   = var.buckets["sources"]
  name     = "functions/${each.value}-${filemd5("${var.package_dir}/${each.value}.zip")}.zip" # content hash: a change redeploys
  source   = "${var.package_dir}/${each.value}.zip"
}

resource "google_cloudfunctions2_function" "function" {
  # checkov:skip=CKV_GCP_124:Public functions take traffic from the load balancer only (ALLOW_INTERNAL_AND_GCLB) and authenticate callers themselves; tasks_api is internal-only.
  for_each = local.functions
  project  = var.project_id
  name     = replace(each.value, "_", "-")
  location = var.region

  build_config {
    runtime     = "python311"
    entry_point = each.value
    source {
      storage_source {
        bucket = var.buckets["sources"]
        object = google_storage_bucket_object.source[each.value].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function[each.value].email
    # sizing from the route table (webmeeting/routes.py SIZING; the local platform runs the same threads)
    max_instance_count               = min(var.function_max_instances, local.topology.sizing[each.value].max_instances)
    available_memory                 = local.topology.sizing[each.value].memory
    available_cpu                    = local.topology.sizing[each.value].cpu
    timeout_seconds                  = local.topology.sizing[each.value].timeout_s
    # public: only through the load balancer (its Cloud Armor, its X-Forwarded-For); internal: Scheduler and Tasks count as internal
    ingress_settings               = local.topology.functions[each.value] == "public" ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true
    environment_variables = merge(
      local.env,
      { THREADS = tostring(local.topology.sizing[each.value].concurrency) },
      # behind IAP: the audience of its signed header, this function's own backend service
      contains(local.iap_functions, each.value) ? { WEBMEETING_IAP_AUDIENCE = local.iap_audience[each.value] } : {},
    )
    max_instance_request_concurrency = local.topology.sizing[each.value].concurrency

    dynamic "secret_environment_variables" {
      for_each = [for g in local.secret_grants : g.secret if g.fn == each.value]
      content {
        key        = "WEBMEETING_${upper(replace(secret_environment_variables.value, "-", "_"))}"
        project_id = var.project_id
        secret     = google_secret_manager_secret.secret[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.function]
}

resource "google_cloud_run_service_iam_member" "public" {
  # checkov:skip=CKV_GCP_102:The load balancer's serverless NEGs need allUsers as invoker; ingress admits the load balancer only, and each function authenticates its callers itself (HMAC signatures, join tokens, MCU identity).
  for_each = setsubtract(local.public_functions, local.iap_functions) # behind IAP: only IAP's agent invokes (iap.tf)
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function[each.value].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_service_iam_member" "tasks_invokers" {
  for_each = {
    scheduler = google_service_account.scheduler.email
    tasks     = google_service_account.tasks.email
  }
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.function["tasks_api"].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${each.value}"
}

# --- Cloud Tasks ---------------------------------------------------------------------------------

resource "google_cloud_tasks_queue" "queue" {
  for_each = toset(["mail", "pbx"])
  project  = var.project_id
  name     = each.value
  location = var.region

  rate_limits {
    max_dispatches_per_second = 50
    max_concurrent_dispatches = 20
  }

  retry_config {
    max_attempts       = 50
    min_backoff        = "2s"
    max_backoff        = "300s"
    max_doublings      = 8
    max_retry_duration = "259200s" # 3 days; the handlers schedule their own retries beyond that
  }
}

# --- Cloud Scheduler: the code's job table ----------------------------------------------------------

resource "google_cloud_scheduler_job" "job" {
  for_each         = local.jobs
  project          = var.project_id
  region           = var.region
  name             = "webmeeting-${each.key}"
  description      = each.value.description
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "540s"

  http_target {
    http_method = "POST"
    uri         = "${local.tasks_url}${each.value.path}"
    body        = base64encode("{}")
    headers = {
      "Content-Type" = "application/json"
    }
    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.tasks_url
    }
  }
}

# --- logs: 7 days; an alert on conversion failures ------------------------------------------------

resource "google_logging_project_bucket_config" "default" {
  project        = var.project_id
  location       = "global"
  bucket_id      = "_Default"
  retention_days = local.retention.server_logs_days
}

resource "google_logging_metric" "conversion_failures" {
  project = var.project_id
  name    = "webmeeting/conversion_failures"
  filter  = "severity>=ERROR AND textPayload:\"conversion of recording\""
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
  }
}

resource "google_monitoring_notification_channel" "ops" {
  project      = var.project_id
  display_name = "webmeeting operations"
  type         = "email"
  labels = {
    email_address = var.ops_email
  }
}

resource "google_monitoring_alert_policy" "conversion_failures" {
  project               = var.project_id
  display_name          = "webmeeting: recording conversions failing"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.ops.id]

  conditions {
    display_name = "a conversion failed"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.conversion_failures.name}\" AND resource.type=\"cloud_run_job\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_COUNT"
      }
    }
  }
}

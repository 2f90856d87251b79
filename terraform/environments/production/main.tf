# The whole platform in one project: data and portal in Frankfurt, MCUs and converters in the
# regions listed. `terraform apply` after `make package` (docs/deploy.md).

provider "google" {
  project = var.project_id
  region  = var.portal_region
}

locals {
  converters = [for r in var.converter_regions : { id = "converter-${r}", region = r }]
}

resource "google_project_service" "api" {
  for_each = toset([
    "cloudfunctions.googleapis.com", "run.googleapis.com", "cloudbuild.googleapis.com", "firestore.googleapis.com",
    "cloudtasks.googleapis.com", "cloudscheduler.googleapis.com", "secretmanager.googleapis.com", "compute.googleapis.com",
    "logging.googleapis.com", "monitoring.googleapis.com", "artifactregistry.googleapis.com", "iamcredentials.googleapis.com",
    "iap.googleapis.com",
  ])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

module "data" {
  source       = "../../modules/data"
  project_id   = var.project_id
  region       = var.portal_region
  name_prefix  = var.name_prefix
  kms_key_name = var.kms_key_name
  depends_on   = [google_project_service.api]
}

# --- the converters' account (the portal module makes the functions', each MCU module its own) -----

resource "google_service_account" "converter" {
  project      = var.project_id
  account_id   = "wm-converter"
  display_name = "webmeeting recording converters"
}

resource "google_project_iam_member" "converter" {
  for_each = toset(["roles/logging.logWriter", "roles/datastore.user", "roles/cloudtasks.enqueuer"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.converter.email}"
}

resource "google_storage_bucket_iam_member" "converter" {
  for_each = toset(["raw_recordings", "recordings"])
  bucket   = module.data.buckets[each.value]
  role     = "roles/storage.objectAdmin" # read and delete raw tracks; write (and rewrite) the MP4
  member   = "serviceAccount:${google_service_account.converter.email}"
}

resource "google_service_account_iam_member" "converter_acts_as_tasks" {
  service_account_id = "projects/${var.project_id}/serviceAccounts/${module.portal.service_accounts["tasks"]}"
  role               = "roles/iam.serviceAccountUser" # the ready mail's task carries the tasks account's token
  member             = "serviceAccount:${google_service_account.converter.email}"
}

module "portal" {
  source                    = "../../modules/portal"
  project_id                = var.project_id
  region                    = var.portal_region
  public_base_url           = var.public_base_url
  buckets                   = module.data.buckets
  package_dir               = var.package_dir
  converters                = local.converters
  converter_service_account = google_service_account.converter.email
  mcus                      = merge([for m in module.mcu : m.registry]...) # who may speak as which MCU
  mcu_accounts              = { for region, m in module.mcu : region => m.service_account }
  ops_email                 = var.ops_email
  smtp_host                 = var.smtp_host
  mail_from                 = var.mail_from
  console_members           = var.console_members
  depends_on                = [google_project_service.api]
}

resource "google_storage_bucket_object" "mcu_package" {
  bucket = module.data.buckets["sources"]
  name   = "mcu/mcu-${filemd5("${var.package_dir}/mcu_vm.zip")}.zip"
  source = "${var.package_dir}/mcu_vm.zip"
}

module "mcu" {
  for_each              = { for m in var.mcu_regions : m.region => m }
  source                = "../../modules/mcu"
  project_id            = var.project_id
  region                = each.value.region
  name                  = "mcu-${each.value.region}"
  size                  = each.value.size
  machine_type          = var.mcu_machine_type
  latitude              = each.value.latitude
  longitude             = each.value.longitude
  portal_url            = var.public_base_url
  package_object        = "gs://${module.data.buckets["sources"]}/${google_storage_bucket_object.mcu_package.name}"
  raw_bucket            = module.data.buckets["raw_recordings"]
  sources_bucket        = module.data.buckets["sources"]
  udp_port_min          = var.mcu_udp_port_min
  udp_port_max          = var.mcu_udp_port_max
  depends_on            = [google_project_service.api]
}

module "converter" {
  for_each                = toset(var.converter_regions)
  source                  = "../../modules/converter"
  project_id              = var.project_id
  region                  = each.value
  job_name                = "converter-${each.value}"
  image                   = var.converter_image
  service_account_email   = google_service_account.converter.email
  invoker_service_account = module.portal.service_accounts["tasks_api"]
  env = {
    GOOGLE_CLOUD_PROJECT             = var.project_id
    WEBMEETING_PUBLIC_BASE_URL       = var.public_base_url
    WEBMEETING_TASKS_TARGET          = module.portal.tasks_url
    WEBMEETING_RAW_BUCKET            = module.data.buckets["raw_recordings"]
    WEBMEETING_RECORDINGS_BUCKET     = module.data.buckets["recordings"]
    WEBMEETING_CONVERTERS            = join(",", [for c in local.converters : "${c.id}@${c.region}"])
    WEBMEETING_OPS_EMAIL             = var.ops_email
    WEBMEETING_TASKS_SERVICE_ACCOUNT = module.portal.service_accounts["tasks"]
  }
  depends_on = [google_project_service.api]
}


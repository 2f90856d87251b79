# Firestore (native mode, Frankfurt) with the code's composite indexes and TTL fields, and the
# buckets. Indexes, TTL collections and the recordings' 7 days come from the code's tables
# (terraform/generated/*.json, `make terraform-data`); tests check they agree.

locals {
  firestore = jsondecode(file("${path.module}/../../generated/firestore.json"))
  retention = jsondecode(file("${path.module}/../../generated/retention.json"))
  buckets = {
    raw_recordings = { suffix = "raw-recordings", delete_after_days = local.retention.recordings_days, prefix = [] }
    recordings     = { suffix = "recordings", delete_after_days = local.retention.recordings_days, prefix = [] }
    # shared files (files/: deleted at session end, 1 day is the safety net) and PDFs (pdfs/: with their meeting)
    files   = { suffix = "files", delete_after_days = 1, prefix = ["files/"] }
    sources = { suffix = "sources", delete_after_days = null, prefix = [] }
  }
}

resource "google_firestore_database" "main" {
  project                           = var.project_id
  name                              = "(default)"
  location_id                       = var.region
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_DISABLED" # deleted means deleted (retention)
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
}

resource "google_firestore_index" "composite" {
  for_each   = { for i in local.firestore.indexes : "${i.collection}-${join("-", [for f in i.fields : f.field_path])}" => i }
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.value.collection

  dynamic "fields" {
    for_each = each.value.fields
    content {
      field_path = fields.value.field_path
      order      = fields.value.order
    }
  }
}

resource "google_firestore_field" "ttl" {
  for_each   = toset(local.firestore.ttl_collections)
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.value
  field      = "expire_at"
  ttl_config {}
}

resource "google_firestore_field" "collection_group" {
  for_each   = { for f in local.firestore.collection_group_fields : "${f.collection}-${f.field}" => f }
  project    = var.project_id
  database   = google_firestore_database.main.name
  collection = each.value.collection
  field      = each.value.field

  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION"
    }
  }
}

resource "google_storage_bucket" "bucket" {
  # checkov:skip=CKV_GCP_62:Access logs would be a second copy of who fetched which recording; Cloud Audit Logs cover admin access.
  # checkov:skip=CKV_GCP_78:Versioning off: a deleted recording, file or PDF must really be gone (retention).
  for_each                    = local.buckets
  project                     = var.project_id
  name                        = "${var.name_prefix}-${each.value.suffix}"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = false
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.delete_after_days == null ? [] : [each.value.delete_after_days]
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = each.value.prefix
      }
      action {
        type = "Delete"
      }
    }
  }
}

# MCUs of one region: a service account of their own (least privilege: logs, metrics, the
# package, and creating raw recordings under this group's own prefix — no reading, overwriting
# or deleting), an instance template, a regional managed instance group with health-check
# auto-healing, a static external IP per VM (browsers reach the MCU directly for media), and
# firewall rules for signalling, the UDP media range and the TURN relay (coturn on each VM).

resource "google_service_account" "mcu" {
  project      = var.project_id
  account_id   = substr("wm-${var.name}", 0, 30)
  display_name = "webmeeting MCUs ${var.region}"
}

resource "google_project_iam_member" "mcu" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.mcu.email}"
}

resource "google_storage_bucket_iam_member" "raw" {
  bucket = var.raw_bucket
  role   = "roles/storage.objectCreator" # create only: Storage checks the declared MD5; no read, overwrite or delete
  member = "serviceAccount:${google_service_account.mcu.email}"
  condition {
    title       = "own-prefix"
    description = "Only raw/<this group's MCU ids>/..."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${var.raw_bucket}/objects/raw/${var.name}-\")"
  }
}

resource "google_storage_bucket_iam_member" "package" {
  bucket = var.sources_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.mcu.email}"
}

resource "google_compute_address" "mcu" {
  count   = var.size
  project = var.project_id
  region  = var.region
  name    = "${var.name}-${count.index + 1}"
}

resource "google_compute_instance_template" "mcu" {
  # checkov:skip=CKV_GCP_40:MCUs need public IPs: browsers send media to them directly (WebRTC).
  project      = var.project_id
  name_prefix  = "${var.name}-"
  region       = var.region
  machine_type = var.machine_type
  tags         = ["webmeeting-mcu"]

  disk {
    source_image = "debian-cloud/debian-12"
    auto_delete  = true
    boot         = true
    disk_size_gb = 30
  }

  network_interface {
    network = var.network
    access_config {} # the static address is attached per instance (stateful IP)
  }

  service_account {
    email  = google_service_account.mcu.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    serial-port-enable     = "FALSE"
    startup-script = templatefile("${path.module}/startup.sh.tftpl", {
      package_object  = var.package_object
      region          = var.region
      name            = var.name
      portal_url      = var.portal_url
      raw_bucket      = var.raw_bucket
      latitude        = var.latitude
      longitude       = var.longitude
      signalling_port = var.signalling_port
      udp_port_min    = var.udp_port_min
      udp_port_max    = var.udp_port_max
      turn_relay_min  = var.turn_relay_port_min
      turn_relay_max  = var.turn_relay_port_max
      project_id      = var.project_id
      capacity        = var.capacity
    })
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "google_compute_health_check" "mcu" {
  project             = var.project_id
  name                = "${var.name}-healthz"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 2
  unhealthy_threshold = 3

  http_health_check {
    port         = 8080
    request_path = "/healthz"
  }
}

resource "google_compute_region_instance_group_manager" "mcu" {
  project            = var.project_id
  name               = var.name
  region             = var.region
  base_instance_name = var.name

  version {
    instance_template = google_compute_instance_template.mcu.id
  }

  auto_healing_policies {
    health_check      = google_compute_health_check.mcu.id
    initial_delay_sec = 180
  }

  update_policy {
    type                  = "PROACTIVE"
    minimal_action        = "REPLACE"
    replacement_method    = "RECREATE" # stateful IPs move with the instance name
    max_unavailable_fixed = max(length(data.google_compute_zones.available.names), 1)
    max_surge_fixed       = 0
  }
}

data "google_compute_zones" "available" {
  project = var.project_id
  region  = var.region
}

resource "google_compute_region_per_instance_config" "mcu" {
  count                         = var.size
  project                       = var.project_id
  region                        = var.region
  region_instance_group_manager = google_compute_region_instance_group_manager.mcu.name
  name                          = "${var.name}-${count.index + 1}"

  preserved_state {
    external_ip {
      interface_name = "nic0"
      auto_delete    = "NEVER"
      ip_address {
        address = google_compute_address.mcu[count.index].self_link
      }
    }
  }
}

resource "google_compute_firewall" "media" {
  project       = var.project_id
  name          = "${var.name}-media"
  network       = var.network
  direction     = "INGRESS"
  target_tags   = ["webmeeting-mcu"]
  source_ranges = ["0.0.0.0/0"] # browsers anywhere

  allow {
    protocol = "udp"
    ports    = ["${var.udp_port_min}-${var.udp_port_max}"]
  }
}

resource "google_compute_firewall" "turn" {
  # coturn on each MCU: UDP and TCP 3478 (TLS shares 443 with signalling), and its relay ports
  project       = var.project_id
  name          = "${var.name}-turn"
  network       = var.network
  direction     = "INGRESS"
  target_tags   = ["webmeeting-mcu"]
  source_ranges = ["0.0.0.0/0"] # browsers anywhere, also behind networks that let only TCP out

  allow {
    protocol = "udp"
    ports    = ["3478", "${var.turn_relay_port_min}-${var.turn_relay_port_max}"]
  }
  allow {
    protocol = "tcp"
    ports    = ["3478"]
  }
}

resource "google_compute_firewall" "signalling" {
  project       = var.project_id
  name          = "${var.name}-signalling"
  network       = var.network
  direction     = "INGRESS"
  target_tags   = ["webmeeting-mcu"]
  source_ranges = ["0.0.0.0/0"]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.signalling_port)]
  }
}

resource "google_compute_firewall" "health" {
  project       = var.project_id
  name          = "${var.name}-health"
  network       = var.network
  direction     = "INGRESS"
  target_tags   = ["webmeeting-mcu"]
  source_ranges = ["35.191.0.0/16", "130.211.0.0/22"] # Google's health checkers

  allow {
    protocol = "tcp"
    ports    = ["8080"]
  }
}

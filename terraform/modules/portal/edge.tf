# The front door: a global external Application Load Balancer (serverless NEGs, URL map, managed
# certificate) with a Cloud Armor policy, all from the code's route table
# (webmeeting/routes.py -> generated/routes.json). Public functions accept traffic from the load
# balancer only (ALLOW_INTERNAL_AND_GCLB); internal ones (tasks_api) are never routed and accept
# internal traffic only: Cloud Tasks and Cloud Scheduler call their own run.app URL.

locals {
  topology         = jsondecode(file("${path.module}/../../generated/routes.json"))
  public_functions = toset([for f, exposure in local.topology.functions : f if exposure == "public"])
  public_routes    = [for r in local.topology.routes : r if r.exposure == "public"]
  iap_functions    = toset(local.topology.iap_functions) # the operator console: Identity-Aware Proxy in front (iap.tf)
  public_host      = regex("^https://([^/:]+)", var.public_base_url)[0]
  # Cloud Run's deterministic URL of the tasks function (https://SERVICE-PROJECT_NUMBER.REGION.run.app):
  # the target and OIDC audience of every task, known before the functions exist (they carry it)
  tasks_url = "https://${replace("tasks_api", "_", "-")}-${data.google_project.this.number}.${var.region}.run.app"
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_compute_region_network_endpoint_group" "function" {
  for_each              = local.public_functions
  project               = var.project_id
  name                  = "wm-${replace(each.value, "_", "-")}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"
  cloud_run {
    # a 2nd-gen function's Cloud Run service carries its name: known before it exists, so the
    # function can carry its own backend service's id (IAP's audience) without a cycle
    service = replace(each.value, "_", "-")
  }
}

resource "google_compute_backend_service" "function" {
  for_each              = local.public_functions
  project               = var.project_id
  name                  = "wm-${replace(each.value, "_", "-")}"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.edge.id
  backend {
    group = google_compute_region_network_endpoint_group.function[each.value].id
  }
  log_config {
    enable = false # request logs would hold meeting keys and client addresses; the functions log what the policy allows
  }
  dynamic "iap" {
    for_each = contains(local.iap_functions, each.value) ? [1] : []
    content {
      enabled = true # Google sign-in before anything reaches the function; it verifies IAP's signed header
    }
  }
}

resource "google_compute_url_map" "edge" {
  project         = var.project_id
  name            = "webmeeting"
  default_service = google_compute_backend_service.function["meeting_page"].id # answers 404 for what it does not serve

  host_rule {
    hosts        = [local.public_host]
    path_matcher = "routes"
  }

  path_matcher {
    name            = "routes"
    default_service = google_compute_backend_service.function["meeting_page"].id
    dynamic "path_rule" {
      for_each = local.public_routes
      content {
        paths   = [path_rule.value.prefix, "${path_rule.value.prefix}/*"]
        service = google_compute_backend_service.function[path_rule.value.function].id
      }
    }
  }
}

resource "google_compute_managed_ssl_certificate" "edge" {
  project = var.project_id
  name    = "webmeeting"
  managed {
    domains = [local.public_host]
  }
}

resource "google_compute_ssl_policy" "edge" {
  project         = var.project_id
  name            = "webmeeting"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "edge" {
  project          = var.project_id
  name             = "webmeeting"
  url_map          = google_compute_url_map.edge.id
  ssl_certificates = [google_compute_managed_ssl_certificate.edge.id]
  ssl_policy       = google_compute_ssl_policy.edge.id
}

resource "google_compute_global_address" "edge" {
  project = var.project_id
  name    = "webmeeting"
}

resource "google_compute_global_forwarding_rule" "edge" {
  project               = var.project_id
  name                  = "webmeeting-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.edge.id
  port_range            = "443"
  target                = google_compute_target_https_proxy.edge.id
}

# Cloud Armor: the route table's per-client rate limits (first matching rule wins, as in the local
# front door), a Log4j probe filter, allow the rest.
resource "google_compute_security_policy" "edge" {
  project = var.project_id
  name    = "webmeeting-edge"
  type    = "CLOUD_ARMOR"

  dynamic "rule" {
    for_each = local.topology.rate_limits
    content {
      description = "rate limit: ${rule.value.name}"
      action      = "throttle"
      priority    = rule.value.priority
      match {
        expr {
          expression = "request.path == '${rule.value.prefix}' || request.path.startsWith('${rule.value.prefix}/')"
        }
      }
      rate_limit_options {
        conform_action = "allow"
        exceed_action  = "deny(429)"
        enforce_on_key = "IP"
        rate_limit_threshold {
          count        = rule.value.count
          interval_sec = rule.value.interval_s
        }
      }
    }
  }

  rule {
    description = "Log4j (CVE-2021-44228) probes"
    action      = "deny(403)"
    priority    = 900
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
  }

  rule {
    description = "everything else"
    action      = "allow"
    priority    = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }
}

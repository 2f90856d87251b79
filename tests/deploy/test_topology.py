"""Production topology = tested topology: terraform's load balancer, ingress, Cloud Armor, trusted
hop count and task targets are built from the route table (webmeeting/routes.py), and so is the
local front door. These tests fail when either drifts from the table."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from infra import launcher
from tests.deploy.test_terraform import ROOT, TF, parse, resources
from webmeeting import routes

PORTAL = TF / "modules" / "portal"
TOPOLOGY = json.loads((TF / "generated" / "routes.json").read_text())


def test_route_table_is_consistent() -> None:
    folders = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
    assert sorted(routes.functions()) == folders, "every function folder has a route and every route a folder"
    prefixes = [r.prefix for r in routes.ROUTES]
    assert len(prefixes) == len(set(prefixes))
    assert routes.functions()["tasks_api"] is routes.Exposure.INTERNAL
    for route in routes.ROUTES:  # a function is either public or internal, never both
        assert routes.functions()[route.function] is route.exposure, route
        assert route.auth, f"{route.prefix} names no caller authentication"
    priorities = [x.priority for x in routes.RATE_LIMITS]
    assert len(set(priorities)) == len(priorities)
    for limit in routes.RATE_LIMITS:
        assert limit.interval_s in routes.ARMOR_INTERVALS_S, f"Cloud Armor refuses interval {limit.interval_s}"
        route = routes.route_for(limit.prefix)
        assert route is not None and route.exposure is routes.Exposure.PUBLIC, f"{limit.name} limits no public route"
    # most specific first: no limit is shadowed by an earlier, broader one
    for i, limit in enumerate(routes.RATE_LIMITS):
        assert routes.limit_for(limit.prefix) is limit, f"{limit.name} is shadowed"
        assert all(not later.matches(limit.prefix) or later is limit for later in routes.RATE_LIMITS[: i + 1])


def test_load_balancer_routes_exactly_the_public_routes() -> None:
    edge = resources(PORTAL / "edge.tf")
    locals_ = parse(PORTAL / "edge.tf")["locals"][0]
    assert "generated/routes.json" in locals_["topology"]
    assert locals_["public_routes"] == '${[for r in local.topology.routes : r if r.exposure == "public"]}'
    (matcher,) = edge[("google_compute_url_map", "edge")]["path_matcher"]
    (rule,) = matcher["dynamic"][0]["path_rule"]["content"]
    assert matcher["dynamic"][0]["path_rule"]["for_each"] == "${local.public_routes}"
    assert rule["paths"] == ["${path_rule.value.prefix}", "${path_rule.value.prefix}/*"]
    assert rule["service"] == "${google_compute_backend_service.function[path_rule.value.function].id}"
    neg = edge[("google_compute_region_network_endpoint_group", "function")]
    backend = edge[("google_compute_backend_service", "function")]
    assert neg["for_each"] == backend["for_each"] == "${local.public_functions}"
    assert neg["network_endpoint_type"] == "SERVERLESS" and backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    assert backend["security_policy"] == "${google_compute_security_policy.edge.id}"
    proxy = edge[("google_compute_target_https_proxy", "edge")]
    assert proxy["ssl_certificates"] == ["${google_compute_managed_ssl_certificate.edge.id}"]
    # the generated file is what the code says (public ones routed, internal ones not)
    assert [r["prefix"] for r in TOPOLOGY["routes"] if r["exposure"] == "public"] == [r.prefix for r in routes.public_routes()]
    assert "/tasks/v1" not in [r.prefix for r in routes.public_routes()]


def test_functions_ingress_follows_the_table() -> None:
    fn = resources(PORTAL / "main.tf")[("google_cloudfunctions2_function", "function")]
    ingress = fn["service_config"][0]["ingress_settings"]
    assert ingress == '${local.topology.functions[each.value] == "public" ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"}'
    text = "\n".join(p.read_text() for p in TF.rglob("*.tf"))
    assert "ALLOW_ALL" not in text, "no function may be called around the load balancer"
    public = resources(PORTAL / "main.tf")[("google_cloud_run_service_iam_member", "public")]
    assert public["for_each"] == "${setsubtract(local.public_functions, local.iap_functions)}"  # the console: IAP's agent only
    assert set(TOPOLOGY["functions"]) == set(routes.functions())


def test_functions_are_sized_by_the_table_in_production_and_locally() -> None:
    """Concurrency, instances, vCPUs, memory and timeout come from ``routes.SIZING`` in terraform;
    the local platform runs each function with the same number of request threads."""
    config = resources(PORTAL / "main.tf")[("google_cloudfunctions2_function", "function")]["service_config"][0]
    sizing = "local.topology.sizing[each.value]"
    assert config["max_instance_request_concurrency"] == f"${{{sizing}.concurrency}}"
    assert config["available_cpu"] == f"${{{sizing}.cpu}}"
    assert config["available_memory"] == f"${{{sizing}.memory}}"
    assert config["timeout_seconds"] == f"${{{sizing}.timeout_s}}"
    assert f"{sizing}.max_instances" in config["max_instance_count"]
    assert f"THREADS = tostring({sizing}.concurrency)" in config["environment_variables"]
    assert set(TOPOLOGY["sizing"]) == set(routes.functions()) == set(routes.SIZING)
    for name, s in routes.SIZING.items():
        assert TOPOLOGY["sizing"][name]["concurrency"] == s.concurrency
        assert s.concurrency == 1 or s.cpu >= 1, f"{name}: more than one request at once needs a whole vCPU"
    source = Path(launcher.__file__).read_text()
    assert '"THREADS": threads' in source and "routes.SIZING[target].concurrency" in source


def test_cloud_armor_rules_are_the_rate_limit_table() -> None:
    policy = resources(PORTAL / "edge.tf")[("google_compute_security_policy", "edge")]
    dynamic = policy["dynamic"][0]["rule"]
    assert dynamic["for_each"] == "${local.topology.rate_limits}"
    (content,) = dynamic["content"]
    (options,) = content["rate_limit_options"]
    assert options["exceed_action"] == "deny(429)" and options["enforce_on_key"] == "IP"
    assert options["rate_limit_threshold"] == [{"count": "${rule.value.count}", "interval_sec": "${rule.value.interval_s}"}]
    expression = content["match"][0]["expr"][0]["expression"]
    # the same prefix semantics as routes.RateLimit.matches
    assert expression == "request.path == '${rule.value.prefix}' || request.path.startsWith('${rule.value.prefix}/')"
    assert content["priority"] == "${rule.value.priority}"
    fixed = [r["priority"] for r in policy["rule"]]
    assert not set(fixed) & {x.priority for x in routes.RATE_LIMITS}
    generated = {x["name"]: (x["prefix"], x["count"], x["interval_s"]) for x in TOPOLOGY["rate_limits"]}
    assert generated == {x.name: (x.prefix, x.count, x.interval_s) for x in routes.RATE_LIMITS}


def test_trusted_hop_count_matches_the_load_balancer_and_the_front_door() -> None:
    env = parse(PORTAL / "main.tf")["locals"][0]["env"]
    assert env["WEBMEETING_TRUSTED_PROXY_COUNT"] == "${tostring(local.topology.trusted_proxy_hops)}"
    assert TOPOLOGY["trusted_proxy_hops"] == routes.TRUSTED_PROXY_HOPS == 2  # "<client>,<load balancer>"
    platform = launcher.Platform(Path("/nonexistent"))
    platform.endpoints.update(firestore_emulator="x", storage_emulator="x", tasks_emulator="x", smtp={"port": 1})
    platform.endpoints.update(dns={"port": 1}, pbx_simulator="http://127.0.0.1:1")
    platform.signing_key_file = lambda: Path("/nonexistent/key.json")  # type: ignore[method-assign]
    assert platform.function_env()["WEBMEETING_TRUSTED_PROXY_COUNT"] == str(routes.TRUSTED_PROXY_HOPS)


def _task_paths_in_code() -> set[str]:
    """Every /tasks/v1/... path the code enqueues or schedules (string constants and f-strings)."""
    found: set[str] = set()
    for path in [
        *(ROOT / "webmeeting").rglob("*.py"),
        *(ROOT / "functions").rglob("main.py"),
        *(ROOT / "converter_job").rglob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(re.findall(r"/tasks/v1/[a-z-]+", node.value))
    return found


def test_every_task_targets_what_production_can_reach() -> None:
    paths = _task_paths_in_code()
    assert {"/tasks/v1/mail", "/tasks/v1/convert", "/tasks/v1/report-push", "/tasks/v1/retention"} <= paths
    for path in paths:
        route = routes.route_for(path)
        assert route is not None and route.function == "tasks_api" and route.exposure is routes.Exposure.INTERNAL, path
    # every holder of WEBMEETING_TASKS_TARGET points at the tasks function's own URL, not the load balancer
    portal_env = parse(PORTAL / "main.tf")["locals"][0]["env"]
    assert portal_env["WEBMEETING_TASKS_TARGET"] == "${local.tasks_url}"
    assert portal_env["WEBMEETING_TASKS_AUTH"] == "iam"
    text = "\n".join(p.read_text() for p in TF.rglob("*.tf"))
    targets = re.findall(r"WEBMEETING_TASKS_TARGET\s*=\s*(\S+)", text)
    assert targets and set(targets) <= {"local.tasks_url", "module.portal.tasks_url"}, targets
    tasks_url = parse(PORTAL / "edge.tf")["locals"][0]["tasks_url"]
    service = routes.functions()
    assert "tasks_api" in service and 'replace("tasks_api", "_", "-")' in tasks_url
    assert tasks_url.endswith(".${var.region}.run.app") and "data.google_project.this.number" in tasks_url
    job = resources(PORTAL / "main.tf")[("google_cloud_scheduler_job", "job")]["http_target"][0]
    assert job["uri"] == "${local.tasks_url}${each.value.path}" and job["oidc_token"][0]["audience"] == "${local.tasks_url}"
    # Cloud Tasks' OIDC audience is the task's own URL (adapters/tasks.py), under the same base
    source = (ROOT / "webmeeting" / "adapters" / "tasks.py").read_text()
    assert "OidcToken(service_account_email=account, audience=url)" in source
    # locally too: the launcher points tasks at the tasks function itself, not the front door
    platform = launcher.Platform(Path("/nonexistent"))
    platform.upstreams["tasks_api"] = "http://127.0.0.1:1"
    platform.endpoints.update(portal="http://127.0.0.1:2", firestore_emulator="x", storage_emulator="x", tasks_emulator="x")
    platform.endpoints.update(smtp={"port": 1}, dns={"port": 1}, pbx_simulator="http://127.0.0.1:3")
    platform.signing_key_file = lambda: Path("/nonexistent/key.json")  # type: ignore[method-assign]
    assert platform.function_env()["WEBMEETING_TASKS_TARGET"] == "http://127.0.0.1:1"


def test_each_mcu_proves_itself_and_writes_only_its_own_raw_prefix() -> None:
    mcu = resources(TF / "modules" / "mcu" / "main.tf")
    raw = mcu[("google_storage_bucket_iam_member", "raw")]
    assert raw["role"] == "roles/storage.objectCreator"  # no read, overwrite or delete
    expression = raw["condition"][0]["expression"].replace('\\"', '"')  # HCL escapes the quotes
    assert expression == 'resource.name.startsWith("projects/_/buckets/${var.raw_bucket}/objects/raw/${var.name}-")'
    template = mcu[("google_compute_instance_template", "mcu")]
    assert template["service_account"][0]["email"] == "${google_service_account.mcu.email}"
    startup = (TF / "modules" / "mcu" / "startup.sh.tftpl").read_text()
    assert "MCU_AUTH=gce" in startup and "MCU_SECRET" not in startup and "MCU_TRUSTED_PROXY_HOPS=1" in startup
    # the native per-packet path is built on the VM from the package's source, before the MCU starts
    assert "gcc" in startup and "python3-dev" in startup and "set -euo pipefail" in startup
    assert startup.index("python -m mcu_vm.native") < startup.index("systemctl enable --now webmeeting-mcu")
    # the registry the portal checks MCUs against comes from the MCU groups themselves
    outputs = parse(TF / "modules" / "mcu" / "outputs.tf")["output"]
    registry = next(o["registry"] for o in outputs if "registry" in o)
    assert "${var.name}-${i + 1}" in registry["value"] and "google_service_account.mcu.email" in registry["value"]
    env = parse(PORTAL / "main.tf")["locals"][0]["env"]
    assert env["WEBMEETING_MCUS"] == "${jsonencode(var.mcus)}"
    text = "\n".join(p.read_text() for p in TF.rglob("*.tf"))
    assert "mcu-secret" not in text and "WEBMEETING_MCU_SECRET" not in text
    production = (TF / "environments" / "production" / "main.tf").read_text()
    assert "merge([for m in module.mcu : m.registry]...)" in production
    # nothing else grants an MCU account anything on the raw bucket
    grants = [body for (rtype, _), body in resources(TF / "environments" / "production" / "main.tf").items() if "iam" in rtype]
    assert not [g for g in grants if "mcu" in str(g.get("member", ""))]


def test_the_converter_holds_no_platform_key() -> None:
    """It decodes untrusted media: what it holds is what a compromised decoder gets."""
    converter = "\n".join(p.read_text() for p in (TF / "modules" / "converter").glob("*.tf"))
    assert "SECRET_KEY" not in converter and "secret_key_ref" not in converter
    production = resources(TF / "environments" / "production" / "main.tf")
    accessors = [b for (rtype, _), b in production.items() if rtype == "google_secret_manager_secret_iam_member"]
    assert not [b for b in accessors if "converter" in str(b.get("member", ""))]
    # locally the job process gets the same: the launcher's runner withholds the keys
    from webmeeting.adapters.converter_runner import WITHHELD

    assert {"WEBMEETING_SECRET_KEY", "WEBMEETING_JOIN_TOKEN_KEY"} <= set(WITHHELD)


def test_turn_runs_with_each_mcu_and_its_secret_is_read_by_the_signer_and_the_relays_only() -> None:
    mcu = resources(TF / "modules" / "mcu" / "main.tf")
    rule = mcu[("google_compute_firewall", "turn")]
    udp = next(a for a in rule["allow"] if a["protocol"] == "udp")
    tcp = next(a for a in rule["allow"] if a["protocol"] == "tcp")
    assert "3478" in udp["ports"] and "${var.turn_relay_port_min}-${var.turn_relay_port_max}" in udp["ports"]
    assert tcp["ports"] == ["3478"]
    registry = parse(TF / "modules" / "mcu" / "outputs.tf")["output"]
    turn_urls = next(o for o in registry if "registry" in o)["registry"]["value"]
    assert "turn:${address}:3478?transport=udp" in turn_urls and "turns:turn.${address}.sslip.io:443?transport=tcp" in turn_urls
    startup = (TF / "modules" / "mcu" / "startup.sh.tftpl").read_text()
    assert "use-auth-secret" in startup and "--secret=webmeeting-turn-secret" in startup
    # no open relay: every peer denied but the MCU itself (IPv4 and IPv6), no loopback peers
    assert "denied-peer-ip=0.0.0.0-255.255.255.255" in startup and "denied-peer-ip=::-ffff:" in startup
    assert "allowed-peer-ip=$IP" in startup and "no-loopback-peers" in startup
    assert startup.count("allowed-peer-ip=") == 1
    portal = parse(PORTAL / "main.tf")["locals"][0]
    assert portal["secret_readers"]["turn-secret"] == ["meeting_api"]
    assert '"turn-secret"' in str(portal["mcu_secret_grants"])


def test_the_console_is_behind_iap_and_its_account_reads_mostly() -> None:
    iap_functions = sorted({r.function for r in routes.ROUTES if routes.behind_iap(r)})
    assert TOPOLOGY["iap_functions"] == iap_functions == ["console"]
    edge, iap, main = (resources(PORTAL / f) for f in ("edge.tf", "iap.tf", "main.tf"))
    backend = edge[("google_compute_backend_service", "function")]
    (dynamic,) = [d["iap"] for d in backend["dynamic"] if "iap" in d]
    assert dynamic["for_each"] == "${contains(local.iap_functions, each.value) ? [1] : []}"
    assert dynamic["content"][0]["enabled"] is True
    # allUsers may invoke the other public functions; the console only IAP's own agent
    assert (
        main[("google_cloud_run_service_iam_member", "public")]["for_each"]
        == "${setsubtract(local.public_functions, local.iap_functions)}"
    )
    invoker = iap[("google_cloud_run_service_iam_member", "iap_invoker")]
    assert invoker["role"] == "roles/run.invoker" and invoker["member"] == "${local.iap_agent}"
    assert iap[("google_iap_web_backend_service_iam_member", "console")]["role"] == "roles/iap.httpsResourceAccessor"
    # the console checks IAP's audience: its own backend service, in its environment
    env = main[("google_cloudfunctions2_function", "function")]["service_config"][0]["environment_variables"]
    assert "WEBMEETING_IAP_AUDIENCE = local.iap_audience[each.value]" in env
    assert "backendServices/${google_compute_backend_service.function[f].generated_id}" in (PORTAL / "iap.tf").read_text()
    # read-mostly: Storage read on recordings only (signed links); deletions go to tasks_api
    roles = parse(PORTAL / "main.tf")["locals"][0]["bucket_roles"]
    assert {(v["bucket"], v["role"]) for v in roles.values() if v["fn"] == "console"} == {
        ("recordings", "roles/storage.objectViewer")
    }
    assert "console" not in parse(PORTAL / "main.tf")["locals"][0]["secret_readers"]["join-token-key"]
    # the audit log's retention: the code's table, in the generated data terraform reads
    retention = json.loads((TF / "generated" / "retention.json").read_text())
    firestore = json.loads((TF / "generated" / "firestore.json").read_text())
    assert retention["audit_log_days"] == 365 and "audit" in firestore["ttl_collections"]

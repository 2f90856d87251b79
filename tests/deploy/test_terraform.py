"""Offline checks of terraform/ (no terraform binary here): every file parses, every variable is
typed and described, providers are pinned, the numbers terraform enforces equal the code's
tables, every function folder and scheduler job has its resources, no service account gets a
primitive role, and every multi-field query in the code has its composite index."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import hcl2
import pytest

from infra import terraform_data
from webmeeting.adapters.firestore_schema import INDEXES
from webmeeting.domain.retention import BY_NAME
from webmeeting.jobs import JOBS

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
FILES = sorted(TF.rglob("*.tf"))
MODULE_DIRS = sorted({p.parent for p in FILES})


def unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, dict):
        return {unquote(k): unquote(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [unquote(v) for v in value]
    return value


def parse(path: Path) -> dict[str, Any]:
    with open(path) as fh:
        return dict(unquote(hcl2.load(fh)))


def resources(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for block in parse(path).get("resource", []):
        for rtype, named in block.items():
            for name, body in named.items():
                out[(rtype, name)] = body
    return out


def test_there_is_terraform_to_check() -> None:
    assert len(FILES) >= 16 and (TF / "environments" / "production" / "main.tf").exists()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(TF)))
def test_every_file_parses(path: Path) -> None:
    parse(path)


@pytest.mark.parametrize("folder", MODULE_DIRS, ids=lambda p: str(p.relative_to(TF)))
def test_modules_have_the_standard_files_and_pinned_providers(folder: Path) -> None:
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= {p.name for p in folder.glob("*.tf")}
    (block,) = parse(folder / "versions.tf")["terraform"]
    (providers,) = block["required_providers"]
    for name, spec in providers.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec["version"]), f"{folder.name}: provider {name} not pinned: {spec['version']}"


@pytest.mark.parametrize("folder", MODULE_DIRS, ids=lambda p: str(p.relative_to(TF)))
def test_every_variable_has_a_type_and_a_description(folder: Path) -> None:
    for block in parse(folder / "variables.tf").get("variable", []):
        for name, body in block.items():
            assert body.get("type"), f"{folder.name}: variable {name} has no type"
            assert len(str(body.get("description", ""))) > 10, f"{folder.name}: variable {name} has no description"
    for block in parse(folder / "outputs.tf").get("output", []):
        for name, body in block.items():
            assert body.get("description"), f"{folder.name}: output {name} has no description"


def test_generated_data_equals_the_codes_tables() -> None:
    for name, text in terraform_data.render().items():
        assert (TF / "generated" / name).read_text() == text, f"terraform/generated/{name} is stale: run `make terraform-data`"
    jobs = json.loads((TF / "generated" / "jobs.json").read_text())
    assert {k: (v["schedule"], v["path"]) for k, v in jobs.items()} == {j.name: (j.schedule, j.path) for j in JOBS}
    retention = json.loads((TF / "generated" / "retention.json").read_text())
    assert retention["recordings_days"] == BY_NAME["recordings"].duration.days == 7  # type: ignore[union-attr]
    assert retention["server_logs_days"] == BY_NAME["server_logs"].duration.days == 7  # type: ignore[union-attr]


@pytest.mark.retention("server_logs")
@pytest.mark.retention("recordings")
def test_retention_numbers_are_wired_into_the_resources() -> None:
    data = (TF / "modules" / "data" / "main.tf").read_text()
    assert 'recordings     = { suffix = "recordings", delete_after_days = local.retention.recordings_days' in data
    assert "age            = lifecycle_rule.value" in data and 'type = "Delete"' in data
    ttl = resources(TF / "modules" / "data" / "main.tf")[("google_firestore_field", "ttl")]
    assert ttl["field"] == "expire_at" and "ttl_collections" in ttl["for_each"] and "ttl_config" in ttl
    logs = resources(TF / "modules" / "portal" / "main.tf")[("google_logging_project_bucket_config", "default")]
    assert logs["retention_days"] == "${local.retention.server_logs_days}"
    buckets = resources(TF / "modules" / "data" / "main.tf")[("google_storage_bucket", "bucket")]
    assert buckets["uniform_bucket_level_access"] is True and buckets["public_access_prevention"] == "enforced"
    assert buckets["versioning"] == [{"enabled": False}]


def test_every_function_folder_and_job_has_its_resources() -> None:
    portal = resources(TF / "modules" / "portal" / "main.tf")
    functions = json.loads((TF / "generated" / "functions.json").read_text())["functions"]
    assert functions == sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
    fn = portal[("google_cloudfunctions2_function", "function")]
    assert fn["for_each"] == "${local.functions}"
    assert portal[("google_storage_bucket_object", "source")]["name"].count("filemd5(") == 1  # content-hash-named zips
    job = portal[("google_cloud_scheduler_job", "job")]
    assert job["for_each"] == "${local.jobs}" and "oidc_token" in job["http_target"][0]
    assert ("google_cloud_tasks_queue", "queue") in portal
    env = resources(TF / "environments" / "production" / "main.tf")
    assert ("google_service_account", "converter") in env
    assert ("google_service_account", "mcu") in resources(TF / "modules" / "mcu" / "main.tf")  # one per MCU group
    converter = resources(TF / "modules" / "converter" / "main.tf")[("google_cloud_run_v2_job", "converter")]
    assert converter["template"][0]["template"][0]["max_retries"] == 0


def test_no_service_account_gets_a_primitive_role() -> None:
    text = "\n".join(p.read_text() for p in FILES)
    roles = set(re.findall(r'"(roles/[A-Za-z.]+)"', text))
    assert roles and not roles & {"roles/owner", "roles/editor", "roles/viewer"}, roles
    assert "roles/iam.serviceAccountAdmin" not in roles and "roles/resourcemanager.projectIamAdmin" not in roles


def test_one_service_account_per_deployable() -> None:
    portal = resources(TF / "modules" / "portal" / "main.tf")
    assert portal[("google_service_account", "function")]["for_each"] == "${local.functions}"
    assert (
        "${google_service_account.function[each.value].email}"
        in portal[("google_cloudfunctions2_function", "function")]["service_config"][0]["service_account_email"]
    )


# --- composite indexes follow the code's queries ----------------------------------------------------

INEQUALITY = {"<", "<=", ">", ">=", "!=", "not-in", "array_contains", "array_contains_any", "in"}


def _chains() -> list[tuple[str, list[tuple[str, str]]]]:
    """Every query chain in the code: its (field, op) filters and order_by fields."""
    found = []
    for path in sorted((ROOT / "webmeeting").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            parts: list[tuple[str, str]] = []
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name == "query":  # the store's helper: query(source, (field, op, value)..., order_by=field)
                for arg in node.args[1:]:
                    if isinstance(arg, ast.Tuple) and all(isinstance(e, ast.Constant) for e in arg.elts[:2]):
                        parts.append((str(arg.elts[0].value), str(arg.elts[1].value)))  # type: ignore[attr-defined]
                for kw in node.keywords:
                    if kw.arg == "order_by" and isinstance(kw.value, ast.Constant):
                        parts.append((str(kw.value.value), "order_by"))
            cur: Any = node
            while isinstance(cur, ast.Call) and isinstance(cur.func, ast.Attribute):
                if cur.func.attr == "where":
                    for kw in cur.keywords:
                        f = kw.value
                        if isinstance(f, ast.Call) and len(f.args) >= 2 and all(isinstance(a, ast.Constant) for a in f.args[:2]):
                            parts.append((str(f.args[0].value), str(f.args[1].value)))
                elif cur.func.attr == "order_by" and cur.args and isinstance(cur.args[0], ast.Constant):
                    parts.append((str(cur.args[0].value), "order_by"))
                cur = cur.func.value
            if len(parts) >= 2:
                found.append((f"{path.relative_to(ROOT)}:{node.lineno}", parts))
    return found


def test_every_multi_field_query_has_its_composite_index() -> None:
    indexed = {frozenset(f for f, _ in fields) for _, fields, _ in INDEXES}
    chains = _chains()
    assert chains, "no multi-field query found: the scan is broken"
    for where, parts in chains:
        fields = {f for f, _ in parts}
        if len(fields) < 2 or not any(op in INEQUALITY or op == "order_by" for _, op in parts):
            continue  # equality only: served by merging single-field indexes
        assert frozenset(fields) in indexed, (
            f"{where}: query on {sorted(fields)} has no composite index in firestore_schema.INDEXES"
        )

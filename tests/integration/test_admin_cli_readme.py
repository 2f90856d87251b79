"""The admin CLI exactly as the README shows it: every command of its ``admin-cli`` block run as a
newcomer runs it (a process, from a checkout whose ``.local/`` is the running platform's, with
no environment variables of its own), and one mistake per command group: one line on stderr
saying what to do, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from infra.launcher import ROOT, Platform
from tests.helpers import ext, meeting, new_pbx
from webmeeting.adapters import firestore as fs

pytestmark = pytest.mark.integration

PREFIX = ".venv/bin/python -m webmeeting.cli.admin"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- admin-cli -->", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


@pytest.fixture
def checkout(platform: Platform, tmp_path: Path) -> Path:
    """A folder standing for the checkout: its ``.local`` is the running platform's state."""
    platform.write_endpoints()
    (tmp_path / ".local").symlink_to(platform.state_dir)
    return tmp_path


def run(checkout: Path, line: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(line)
    assert " ".join(argv[:3]) == PREFIX, line
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WEBMEETING_", "FIRESTORE_", "STORAGE_", "GOOGLE_", "GCLOUD_"))
    }
    env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "250"}
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, *argv[1:]], cwd=checkout, env=env, capture_output=True, text=True, timeout=60
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_every_readme_command_works_against_the_running_platform(
    platform: Platform, checkout: Path, api: str, license_key: str
) -> None:
    commands = readme_commands()
    assert len(commands) >= 20
    groups = {shlex.split(c)[4] for c in commands}
    assert groups >= {"licenses", "pbx", "mcus", "reports", "recordings", "converters", "retention", "privacy"}
    email = "grace@example.com"
    doomed = new_pbx(api, license_key)  # deleted by `pbx delete`
    assert doomed.sync([ext("101", email="ada@example.com")]).status_code == 200
    assert doomed.put_meeting("m1", meeting("101", participants=[{"name": "Grace", "email": email}])).status_code == 201
    unbound = new_pbx(api, platform.endpoints["dev_license_keys"][1], "unbind.example.com")  # `licenses unbind`
    mcu_id = platform.endpoints["mcus"][0]["id"]
    converter = "conv-eu"
    recording_id = "r" * 32  # a failed conversion, as `recordings retry` finds one
    now = datetime.now(UTC)
    fs.recordings().document(recording_id).set(
        {"status": "failed", "meeting_key": "gone", "mcu_id": mcu_id, "created_at": now, "attempts": 1, "tracks": []}
    )
    key_result = run(checkout, next(c for c in commands if " licenses add " in c))
    assert key_result.returncode == 0, key_result.stderr
    new_key = key_result.stdout.strip()
    values = {
        "KEY": new_key,
        "PBX_ID": doomed.pbx_id,
        "MCU_ID": mcu_id,
        "RECORDING_ID": recording_id,
        "CONVERTER": converter,
        "EMAIL": email,
        "FQDN": "unbind.example.com",
    }
    outputs: dict[str, str] = {}
    for line in commands:
        filled = re.sub(r"\b[A-Z][A-Z_]+\b", lambda m: values.get(m.group(0), m.group(0)), line)
        result = run(checkout, filled)
        assert result.returncode == 0 and "Traceback" not in result.stderr, f"{filled}\n{result.stderr}"
        outputs[line.removeprefix(PREFIX + " --local ")] = result.stdout
    assert new_key in outputs["licenses list"] and "revoked" in outputs["licenses revoke KEY"]
    listed = [json.loads(row) for row in outputs["pbx list --json"].splitlines()]
    assert {(r["id"], r["pbx_fqdn"]) for r in listed} >= {
        (doomed.pbx_id, "pbx.example.com"),
        (unbound.pbx_id, "unbind.example.com"),
    }
    assert all(set(r) >= {"id", "pbx_fqdn", "license_key", "last_sync_at", "mcu_id"} and "secret_enc" not in r for r in listed)
    assert doomed.pbx_id in outputs["pbx list"] and mcu_id in outputs["mcus list"]
    assert (
        converter in outputs["converters list"]
        and f"retrying {recording_id} on {converter}" in outputs["recordings retry RECORDING_ID --converter CONVERTER"]
    )
    exported = json.loads(outputs["privacy export --email EMAIL"])
    assert [m["id"] for m in exported["meetings"]], exported
    assert json.loads(outputs["privacy erase --email EMAIL"])["meetings"] == 1
    assert not fs.pbxs().document(doomed.pbx_id).get().exists
    assert not fs.pbxs().document(unbound.pbx_id).get().exists
    assert fs.data(fs.mcus().document(mcu_id).get())["status"] == "active"  # deprecated, then restored
    assert fs.data(fs.licenses().document(new_key).get())["revoked"] is True
    assert (now + timedelta(days=365)).date().isoformat() in outputs["licenses list"]
    assert email in outputs["operators list"] and "support" in outputs["operators list"]
    assert not fs.operators().document(email).get().exists  # removed again
    # every command above is in the audit log, as the CLI's operator; the last one as --operator
    audit = fs.audit().stream()
    entries = [fs.data(s) for s in audit]
    assert {e["via"] for e in entries} == {"cli"} and {"manage_licenses", "pbx_delete", "privacy_erase", "view_audit"} <= {
        e["action"] for e in entries
    }
    assert any(e["operator"] == email and e["action"] == "view_audit" for e in entries)
    assert email not in {e["target"] for e in entries if e["action"] == "privacy_erase"}  # a keyed hash, not the address


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("licenses revoke WM-NOPE-NOPE-0000", "no license WM-NOPE-NOPE-0000"),
        ("licenses add --max-participants 1", "max-participants"),
        ("pbx delete no-such-pbx --yes", "no PBX no-such-pbx"),
        ("mcus deprecate no-such-mcu", "no MCU no-such-mcu"),
        ("reports list --limit 0", "--limit"),
        ("recordings retry no-such-recording", "unknown recording"),
        ("converters disable no-such-converter", "unknown converter"),
        ("retention report --pbx no-such-pbx", "no PBX no-such-pbx"),
        ("privacy export", "give --pbx or --email"),
        ("nonsense", "No such command"),
    ],
)
def test_a_mistake_is_one_line_and_changes_nothing(checkout: Path, line: str, says: str) -> None:
    before = sorted(s.id for s in fs.licenses().stream())
    assert says in one_line_error(run(checkout, f"{PREFIX} --local {line}"))
    assert sorted(s.id for s in fs.licenses().stream()) == before


def test_without_a_running_platform_or_settings_it_says_what_to_do(tmp_path: Path) -> None:
    assert "make run" in one_line_error(run(tmp_path, f"{PREFIX} --local mcus list"))
    assert "--local" in one_line_error(run(tmp_path, f"{PREFIX} mcus list"))

"""Starting a converter: in production an execution of the converter's Cloud Run job (one job
per region, named by the converter id); locally the same job code as a process of its own.

``WEBMEETING_CONVERTER_RUNNER=local`` selects the local runner (logs in
``WEBMEETING_CONVERTER_LOG_DIR``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from webmeeting import runtime
from webmeeting.domain.converters import Converter
from webmeeting.settings import child_environment

ROOT = Path(__file__).resolve().parents[2]
# what the converter never gets (production: its Cloud Run job has no such secret either)
WITHHELD = frozenset({"WEBMEETING_SECRET_KEY", "WEBMEETING_JOIN_TOKEN_KEY", "WEBMEETING_SIGNING_KEY_FILE"})


def _args(converter: Converter, rec_id: str, attempt: int) -> list[str]:
    return ["--recording-id", rec_id, "--converter", converter.id, "--attempt", str(attempt)]


def run(converter: Converter, rec_id: str, attempt: int, settings: Any) -> None:
    if runtime.backends().converter_runner == "local":
        _run_local(converter, rec_id, attempt)
    else:
        _run_cloud(converter, rec_id, attempt, settings.project)


def _run_local(converter: Converter, rec_id: str, attempt: int) -> None:
    logs = Path(runtime.backends().converter_log_dir)
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"converter-{converter.id}.log", "ab") as log:
        subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "converter_job", *_args(converter, rec_id, attempt)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={
                **child_environment(WITHHELD),
                "PYTHONPATH": str(ROOT),
                "WEBMEETING_CONVERTER_ID": converter.id,
            },
            start_new_session=True,
        )


def _run_cloud(converter: Converter, rec_id: str, attempt: int, project: str) -> None:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    url = f"https://run.googleapis.com/v2/projects/{project}/locations/{converter.region}/jobs/{converter.id}:run"
    body = {"overrides": {"containerOverrides": [{"args": _args(converter, rec_id, attempt)}]}}
    resp = AuthorizedSession(credentials).post(url, json=body, timeout=30)
    resp.raise_for_status()

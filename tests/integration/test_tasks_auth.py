"""The tasks function fails closed: without its secret configured (and not told that IAM guards
it), it admits nobody. Run as deployed, through functions-framework's app."""

from __future__ import annotations

import json

import functions_framework
import pytest

from infra.launcher import ROOT, Platform
from webmeeting import runtime

pytestmark = pytest.mark.integration


def test_tasks_fail_closed_without_their_secret(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    env = platform.function_env() | {"WEBMEETING_TASKS_SECRET": ""}
    env.pop("WEBMEETING_TASKS_AUTH", None)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runtime.settings.cache_clear()
    try:
        app = functions_framework.create_app("tasks_api", str(ROOT / "functions" / "tasks_api" / "main.py"))
        for headers in ({}, {"X-Webmeeting-Task-Secret": ""}):
            resp = app.test_client().post("/tasks/v1/retention", json={}, headers=headers)
            assert resp.status_code == 401 and json.loads(resp.data)["error"]["code"] == "unauthenticated"
    finally:
        monkeypatch.undo()
        runtime.settings.cache_clear()

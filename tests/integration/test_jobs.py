"""Every job of the scheduler's job table reaches a handler that runs it, and only with the
scheduler's credentials."""

from __future__ import annotations

import time

import pytest
import requests
from croniter import croniter

from infra.launcher import Platform
from tests.helpers import assert_error
from webmeeting.jobs import JOBS

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.name)
def test_job_runs_with_credentials_only(platform: Platform, job) -> None:  # type: ignore[no-untyped-def]
    assert croniter.is_valid(job.schedule)
    url = platform.upstreams["tasks_api"] + job.path  # the internal function itself, as the scheduler calls it
    assert_error(requests.post(platform.endpoints["portal"] + job.path, json={}, timeout=30), 404, "not_found")  # never routed
    assert_error(requests.post(url, json={}, timeout=30), 401, "unauthenticated")
    assert_error(requests.post(url, json={}, headers={"X-Webmeeting-Task-Secret": "wrong"}, timeout=30), 401, "unauthenticated")
    ok = requests.post(url, json={}, headers={"X-Webmeeting-Task-Secret": platform.tasks_secret}, timeout=60)
    assert ok.status_code == 200, ok.text
    assert_error(
        requests.post(url, json={"x": 1}, headers={"X-Webmeeting-Task-Secret": platform.tasks_secret}, timeout=30),
        400,
        "invalid_request",
    )
    # a fan-out job's tasks run now: let them finish before the next test arranges its data
    from webmeeting.adapters import tasks

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pending = [t for q in ("pbx", "mail") for t in tasks.client().list_tasks(parent=tasks.queue_path(platform.project, q))]
        if not pending:
            break
        time.sleep(0.2)
    assert not pending, pending

"""The local Cloud Scheduler: runs the job table (``webmeeting/jobs.py``) with croniter,
POSTing each job to the internal tasks function's own URL with the local task secret, as Cloud
Scheduler does with an OIDC token in production (the load balancer does not route /tasks).

    python -m infra.scheduler --target http://127.0.0.1:PORT
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

import requests
import typer
from croniter import croniter

from webmeeting.adapters.tasks import SECRET_HEADER
from webmeeting.jobs import JOBS

log = logging.getLogger("scheduler")


def run(target: str = typer.Option(..., help="the tasks function's own base URL")) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    secret = os.environ.get("WEBMEETING_TASKS_SECRET", "")
    now = datetime.now(UTC)
    due = {job.name: croniter(job.schedule, now).get_next(datetime) for job in JOBS}
    while True:
        now = datetime.now(UTC)
        for job in JOBS:
            if due[job.name] <= now:
                due[job.name] = croniter(job.schedule, now).get_next(datetime)
                try:
                    resp = requests.post(target + job.path, json={}, headers={SECRET_HEADER: secret}, timeout=120)
                    log.info("%s: %s %s", job.name, resp.status_code, resp.text[:200])
                except requests.RequestException as exc:
                    log.warning("%s: %s", job.name, exc)
        time.sleep(max(0.2, min((d - datetime.now(UTC)).total_seconds() for d in due.values())))


if __name__ == "__main__":
    typer.run(run)

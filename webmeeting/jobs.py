"""The scheduler's job table: one source for terraform's Cloud Scheduler jobs and the local
scheduler (``infra/scheduler.py``). Each job POSTs to a task handler of ``tasks_api``, which
fans out or does bounded work; handlers are idempotent, so a job that runs twice is harmless.
Schedules are cron expressions in UTC."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str  # cron, UTC
    path: str  # POST target under the portal's base URL (tasks_api)
    description: str


JOBS: tuple[Job, ...] = (
    Job(
        "sessions-sweep",
        "* * * * *",
        "/tasks/v1/sessions-sweep",
        "close dead MCUs' connections at their last heartbeat, report sessions whose end was missed, sample MCU load",
    ),
    Job(
        "recordings-sweep",
        "* * * * *",
        "/tasks/v1/recordings-sweep",
        "retry conversions whose converter stopped renewing its lease, re-dispatch lost conversion tasks, clean raw tracks left",
    ),
    Job(
        "dns-checks",
        "0 3 * * *",
        "/tasks/v1/dns-checks",
        "resolve every PBX's FQDN once a day (tasks of 100 PBXs); failing streaks feed the retention rules",
    ),
    Job(
        "retention",
        "30 3 * * *",
        "/tasks/v1/retention",
        "run every retention rule of the policy table (one task per rule, batches re-enqueued)",
    ),
)

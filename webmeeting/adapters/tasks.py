"""Cloud Tasks adapter: enqueue an HTTP task for one of our handlers.

Locally the client talks to the emulator named by ``WEBMEETING_TASKS_EMULATOR_HOST`` (the
client honours no emulator variable of its own) and tasks carry a shared secret header; in
production tasks carry an OIDC token of ``WEBMEETING_TASKS_SERVICE_ACCOUNT``.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

import grpc
from google.cloud import tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport
from google.protobuf import timestamp_pb2

from webmeeting import runtime

LOCATION = "europe-west3"
SECRET_HEADER = "X-Webmeeting-Task-Secret"  # noqa: S105 - a header name, not a secret

_client: tasks_v2.CloudTasksClient | None = None
_lock = threading.Lock()


def client() -> tasks_v2.CloudTasksClient:
    global _client
    with _lock:
        if _client is None:
            emulator = runtime.backends().tasks_emulator_host
            if emulator:
                transport = CloudTasksGrpcTransport(channel=grpc.insecure_channel(emulator))
                _client = tasks_v2.CloudTasksClient(transport=transport)
            else:
                _client = tasks_v2.CloudTasksClient()
        return _client


def queue_path(project: str, queue: str) -> str:
    return client().queue_path(project, LOCATION, queue)


def ensure_queue(project: str, queue: str) -> None:
    """Create the queue if it does not exist (local platform; terraform creates them in production)."""
    parent = f"projects/{project}/locations/{LOCATION}"
    names = {q.name for q in client().list_queues(parent=parent)}
    path = queue_path(project, queue)
    if path not in names:
        client().create_queue(parent=parent, queue=tasks_v2.Queue(name=path))


def enqueue(project: str, queue: str, url: str, payload: dict[str, Any], *, at: datetime | None = None) -> None:
    headers = {"Content-Type": "application/json"}
    request: dict[str, Any] = {
        "http_method": tasks_v2.HttpMethod.POST,
        "url": url,
        "headers": headers,
        "body": json.dumps(payload).encode(),
    }
    secret = runtime.backends().tasks_secret
    account = runtime.backends().tasks_service_account
    if account:
        request["oidc_token"] = tasks_v2.OidcToken(service_account_email=account, audience=url)
    elif secret:
        headers[SECRET_HEADER] = secret
    task: dict[str, Any] = {"http_request": tasks_v2.HttpRequest(**request)}
    if at is not None:
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(at)
        task["schedule_time"] = ts
    client().create_task(parent=queue_path(project, queue), task=tasks_v2.Task(**task))


def backoff(attempt: int, base_s: float = 2.0, cap_s: float = 300.0) -> timedelta:
    """Delay before retry ``attempt`` (1, 2, ...): exponential, capped."""
    return timedelta(seconds=min(cap_s, base_s ** max(0, attempt - 1) * base_s))

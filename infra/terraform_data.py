"""Writes terraform/generated/*.json from the code's tables, so terraform and the code cannot
drift apart: the scheduler's job table, Firestore's indexes and TTL fields, the retention
durations that terraform enforces (bucket lifecycle, log retention), the function folders, the route table (load balancer, ingress, Cloud Armor).

    .venv/bin/python -m infra.terraform_data      (make terraform-data)
"""

from __future__ import annotations

import json
from pathlib import Path

from webmeeting import routes
from webmeeting.adapters.firestore_schema import COLLECTION_GROUP_FIELDS, INDEXES, TTL_COLLECTIONS
from webmeeting.domain.retention import BY_NAME
from webmeeting.jobs import JOBS

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "terraform" / "generated"


def documents() -> dict[str, object]:
    functions = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
    return {
        "jobs.json": {j.name: {"schedule": j.schedule, "path": j.path, "description": j.description} for j in JOBS},
        "firestore.json": {
            "indexes": [
                {"collection": c, "fields": [{"field_path": f, "order": o} for f, o in fields], "used_by": used}
                for c, fields, used in INDEXES
            ],
            "ttl_collections": list(TTL_COLLECTIONS),
            "collection_group_fields": [{"collection": c, "field": f} for c, f in COLLECTION_GROUP_FIELDS],
        },
        "retention.json": {
            "recordings_days": BY_NAME["recordings"].duration.days,  # type: ignore[union-attr]
            "server_logs_days": BY_NAME["server_logs"].duration.days,  # type: ignore[union-attr]
            "audit_log_days": BY_NAME["audit_log"].duration.days,  # type: ignore[union-attr]
        },
        "functions.json": {"functions": functions},
        "routes.json": routes.document(),
    }


def render() -> dict[str, str]:
    return {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in documents().items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote terraform/generated/{name}")


if __name__ == "__main__":
    main()

"""Retention sweep cost: Firestore reads, writes and time of one rule's sweep over 10,000 and
100,000 stored items of which 1 % are due, against the Firestore emulator.

Two rules: ``participant_events`` (due documents deleted) and ``meeting_names`` (due meetings'
names cleared, a flag set). The claim under test: reads grow with what is due, not with what is
stored (every sweep is an indexed query for due items only).

    .venv/bin/python bench/retention_sweep.py [--sizes 10000 100000] [--no-doc]
"""

from __future__ import annotations

import argparse
import platform as machine
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.firestore_meter import install  # noqa: E402
from bench.report import write_section  # noqa: E402
from infra.launcher import Platform  # noqa: E402
from webmeeting import runtime  # noqa: E402
from webmeeting.adapters import firestore as fs  # noqa: E402
from webmeeting.services import retention  # noqa: E402

DUE_SHARE = 0.01


def seed(rule: str, n: int, now: datetime) -> int:
    """``n`` items, 1 % of them due; returns how many are due."""
    due = int(n * DUE_SHARE)
    db = fs.client()
    batch, pending = db.batch(), 0
    for i in range(n):
        old = i < due
        if rule == "participant_events":
            ref = db.collection("participant_events").document(f"ev-{rule[:2]}-{i:07d}")
            at = now - timedelta(days=8 if old else 1)
            body: dict[str, Any] = {
                "type": "joined",
                "meeting_key": "k" * 22,
                "participant_id": f"p-{i:08d}",
                "at": at,
                "name": "Ada",
                "ip": "127.0.0.9",
            }
        else:
            ref = db.collection("meetings").document(f"m-{i:07d}")
            start = now - timedelta(days=8 if old else -1)
            body = {
                "pbx_id": "bench",
                "kind": "scheduled",
                "name": "Weekly review",
                "comments": "Agenda",
                "scheduled_start": start,
                "ends_at": start + timedelta(hours=1),
                "participants": [{"name": "Grace Hopper", "email": "grace@example.org"}],
                "names_cleared": False,
                "emails_cleared": False,
            }
        batch.set(ref, body)
        pending += 1
        if pending == 500:
            batch.commit()
            batch, pending = db.batch(), 0
    if pending:
        batch.commit()
    return due


def wipe() -> None:
    for name in ("participant_events", "meetings"):
        fs.client().recursive_delete(fs.client().collection(name))


def measure(rule: str, n: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    wipe()
    print(f"{rule}: seeding {n:,} items…", flush=True)
    due = seed(rule, n, now)
    meter = install(fs.client())
    settings = runtime.settings()
    started = time.perf_counter()
    done, runs = 0, 0
    while True:
        result = retention.run_rule(rule, settings, now)
        done += result["done"]
        runs += 1
        if not result["more"]:
            break
    elapsed = time.perf_counter() - started
    row = {
        "rule": rule,
        "stored": n,
        "due": due,
        "done": done,
        "reads": meter.reads,
        "writes": meter.writes,
        "batches": runs,
        "seconds": elapsed,
    }
    meter.reset()
    second = retention.run_rule(rule, settings, now)
    row["second_run_reads"], row["second_run_writes"], row["second_run_done"] = meter.reads, meter.writes, second["done"]
    print(row, flush=True)
    return row


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine.machine()}, 2 cores, Python {machine.python_version()}, "
        "Firestore emulator, by `bench/retention_sweep.py` (1 % of the stored items due).",
        "",
        "| rule | stored | due | Firestore reads | Firestore writes | task batches | time (s) | second run: reads / writes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['rule']}` | {r['stored']:,} | {r['due']:,} | {r['reads']:,} | {r['writes']:,} | {r['batches']} | "
            f"{r['seconds']:.2f} | {r['second_run_reads']} / {r['second_run_writes']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="wm-bench-retention-"))
    platform = Platform(state, project="wm-bench-retention", mcu_count=0)
    platform.start(functions=False)
    try:
        platform.export_env()
        runtime.use_environment({"WEBMEETING_PUBLIC_BASE_URL": "http://127.0.0.1"})  # no functions here: in-process
        rows = [measure(rule, n) for rule in ("participant_events", "meeting_names") for n in args.sizes]
        text = render(rows)
        print(text)
        if not args.no_doc:
            write_section("retention_sweep", "Retention sweeps", text)
            print("written to docs/benchmarks.md")
    finally:
        platform.stop()


if __name__ == "__main__":
    main()

"""Sync cost: Firestore reads, writes and wall time of PUT /sync for 100, 1,000 and 5,000
extensions: the first sync, an unchanged re-sync, and a re-sync with 1 % of extensions changed.

Runs the pbx_api function in-process exactly as deployed (functions-framework app, real
Firestore emulator) and counts operations at the Firestore RPC layer (bench/firestore_meter.py).
Prints a table and writes it into docs/benchmarks.md.

    make bench            (or: .venv/bin/python bench/sync_cost.py --sizes 100 1000)
"""

from __future__ import annotations

import argparse
import json
import os
import platform as host
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.firestore_meter import Meter, install  # noqa: E402
from bench.report import DOC, write_section  # noqa: E402
from infra.launcher import DEV_LICENSE_KEYS, Platform  # noqa: E402
from webmeeting.domain.signing import signed_headers  # noqa: E402


def extensions(n: int, changed: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        first = "Changed" if i < changed else f"First{i}"
        out.append(
            {
                "number": str(1000 + i),
                "first_name": first,
                "last_name": f"Last{i}",
                "email": f"user{i}@example.com",
                "vanity_name": f"user{i}",
            }
        )
    return out


def run(sizes: list[int]) -> list[dict[str, Any]]:
    import functions_framework

    from webmeeting.adapters import firestore as fs

    state = Path(tempfile.mkdtemp(prefix="wm-bench-"))
    platform = Platform(state, project="wm-bench")
    platform.start(functions=False)
    platform.endpoints["portal"] = "http://127.0.0.1:0"
    os.environ.update({k: v for k, v in platform.function_env().items() if k != "PYTHONPATH"})
    rows = []
    try:
        app = functions_framework.create_app("pbx_api", str(ROOT / "functions" / "pbx_api" / "main.py"))
        http = app.test_client()
        meter: Meter = install(fs.client())
        with Progress() as progress:
            task = progress.add_task("syncing", total=len(sizes) * 3)
            for idx, n in enumerate(sizes):
                act = http.post(
                    "/api/pbx/v1/activate",
                    headers={"X-Forwarded-For": "127.0.0.1"},
                    json={
                        "license_key": DEV_LICENSE_KEYS[idx],
                        "pbx_fqdn": f"bench{n}.example.com",
                        "webmeeting_fqdn": "meet.example.com",
                        "pbx_version": "20",
                    },
                )
                assert act.status_code == 201, act.get_data(as_text=True)
                pbx = act.get_json()
                for label, exts in (
                    ("first sync", extensions(n)),
                    ("unchanged re-sync", extensions(n)),
                    ("1 % changed", extensions(n, changed=max(1, n // 100))),
                ):
                    body = json.dumps({"extensions": exts}).encode()
                    h = signed_headers(
                        pbx["pbx_id"], pbx["api_secret"].encode(), "PUT", "/api/pbx/v1/sync", body, int(time.time())
                    )
                    meter.reset()
                    t0 = time.perf_counter()
                    resp = http.put(
                        "/api/pbx/v1/sync",
                        data=body,
                        headers={**h, "X-Forwarded-For": "127.0.0.1", "Content-Type": "application/json"},
                    )
                    elapsed = time.perf_counter() - t0
                    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
                    rows.append(
                        {
                            "extensions": n,
                            "case": label,
                            "reads": meter.reads,
                            "writes": meter.writes,
                            "commits": meter.commits,
                            "seconds": elapsed,
                            "body_kib": len(body) / 1024,
                        }
                    )
                    progress.advance(task)
    finally:
        platform.stop()
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| extensions | case | Firestore reads | Firestore writes | batches | wall time (s) | body (KiB) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['extensions']:,} | {r['case']} | {r['reads']:,} | {r['writes']:,} | {r['commits']} | "
            f"{r['seconds']:.2f} | {r['body_kib']:.0f} |"
        )
    stamp = time.strftime("%Y-%m-%d")
    machine = f"{host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}, Firestore emulator"
    return "\n".join([f"Measured {stamp} on {machine} by `bench/sync_cost.py`.", "", *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--no-doc", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    rows = run(args.sizes)
    console = Console()
    table = Table("extensions", "case", "reads", "writes", "batches", "seconds")
    for r in rows:
        table.add_row(
            f"{r['extensions']:,}", r["case"], str(r["reads"]), str(r["writes"]), str(r["commits"]), f"{r['seconds']:.2f}"
        )
    console.print(table)
    if not args.no_doc:
        write_section("sync_cost", "Sync cost", render(rows))
        console.print(f"written to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

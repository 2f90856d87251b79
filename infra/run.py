"""``make run``: the whole local platform in the foreground until Ctrl-C.

Starts everything (infra.launcher), restarts whatever dies (with backoff, as production's
instance groups and Cloud Run do; only Ctrl-C or a failure to start stops it), runs the demo (a simulated PBX activates, syncs the
extensions of infra/demo/extensions.yaml and creates a meeting), writes .local/endpoints.json
and prints each enabled extension's Quick Meeting link.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from infra.launcher import DEMO_LICENSE_KEY, ROOT, Platform
from infra.pbx_client import PbxClient
from infra.pbx_sim import load_extensions, write_state

DEMO_FQDN = "pbx.demo.webmeeting.test"
HEAL_EVERY_S = 0.25  # how often dead processes are looked for (each restarts after its own backoff)
console = Console()


def run_demo(platform: Platform) -> None:
    ep = platform.endpoints
    client = PbxClient(ep["pbx_api"], clock_offset_s=0)
    resp = client.activate(DEMO_LICENSE_KEY, DEMO_FQDN, f"meet.{DEMO_FQDN}")
    resp.raise_for_status()
    platform.register_pbx(DEMO_FQDN, client.pbx_id, client.api_secret)
    write_state(platform.state_dir / "pbx-sim" / "state.json", client, DEMO_FQDN)  # for `python -m infra.pbx_sim` commands

    synced = client.sync(load_extensions(ROOT / "infra" / "demo" / "extensions.yaml"))
    synced.raise_for_status()
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    meeting = client.put_meeting(
        "demo-1",
        {
            "organizer": "101",
            "name": "Demo review",
            "comments": "Try the links in two windows.",
            "scheduled_start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_minutes": 30,
        },
    )
    meeting.raise_for_status()

    console.rule("[bold]webmeeting is running")
    console.print(f"portal        {ep['portal']}")
    console.print(f"PBX API       {ep['pbx_api']}  (OpenAPI: {ep['pbx_api']}/openapi.json)")
    console.print(f"mail inbox    {ep['smtp']['inbox_dir']}")
    console.print(f"TURN (coturn) {', '.join(ep['turn']['urls'])}")
    console.print(f"dev licenses  {', '.join(ep['dev_license_keys'])}")
    console.print(f"console       {ep['console']['url']}  (operators; docs/operations.md)")
    for email, role in ep["console"]["operators"].items():
        console.print(f"  sign in as  {email} ({role}), password {ep['console']['password']}")
    console.print(f"demo PBX      {DEMO_FQDN} (pbx_id {client.pbx_id})")
    console.print("\n[bold]Quick Meeting links[/bold]")
    for ext in synced.json()["extensions"]:
        if ext["enabled"]:
            console.print(f"  {ext['number']}  {ext['quick_meeting_url']}")
        else:
            console.print(f"  {ext['number']}  [yellow]disabled: {ext['reason']}[/yellow]")
    body = meeting.json()
    console.print(f"\n[bold]Scheduled meeting[/bold] 'Demo review': {body['url']}")
    console.print(f"  organizer link (polls, documents, dial-in, invitations): {body['organizer_url']}")
    if body.get("vanity_url"):
        console.print(f"  vanity link: {body['vanity_url']}")
    console.print("\nCtrl-C stops everything.")
    console.file.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".local", help="logs, mail, endpoints.json")
    state = parser.parse_args().state_dir.resolve()
    for stale in ("mail", "pbx-sim", "dns-zone.json", "endpoints.json"):
        path = state / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    platform = Platform(state, scheduler=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with console.status("starting the local platform..."):
            platform.start()
        run_demo(platform)
        platform.write_endpoints()
        while not stop.wait(HEAL_EVERY_S):  # only Ctrl-C (or a failure to start) ends the platform
            for name in platform.heal():
                console.print(f"[yellow]{name} had stopped: restarted (logs in {state / 'logs'})[/yellow]")
                console.file.flush()
    finally:
        console.print("stopping...")
        platform.stop()


if __name__ == "__main__":
    main()

"""PBX simulator: a CLI that plays a PBX against the platform, and the PBX-side HTTP endpoints
of the contract (dial-in data, report receiver).

    python -m infra.pbx_sim activate --license WM-DEV-LOCAL-0001 --fqdn pbx.example.test
    python -m infra.pbx_sim sync infra/demo/extensions.yaml
    python -m infra.pbx_sim meeting-put m1 --organizer 101 --name Review --start 2026-12-01T09:00:00Z
    python -m infra.pbx_sim meeting-delete m1
    python -m infra.pbx_sim reports
    python -m infra.pbx_sim serve --port 8089

State (pbx_id, api_secret, API base) lives in a JSON file (--state, default
.local/pbx-sim/state.json); the portal comes from .local/endpoints.json unless --api is given.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import typer
import yaml
from aiohttp import web
from rich.console import Console

from infra.pbx_client import PbxClient
from webmeeting.domain import signing

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE = ROOT / ".local" / "pbx-sim" / "state.json"  # the PBX the CLI commands act as
PBXS_DIR = ROOT / ".local" / "pbx-sim" / "pbxs"  # every simulated PBX the server answers for
ENDPOINTS = ROOT / ".local" / "endpoints.json"

app = typer.Typer(help="PBX simulator", no_args_is_help=True)
console = Console()


def write_state(path: Path, client: PbxClient, fqdn: str) -> None:
    """A simulated PBX's identity: who the server answers as, what the CLI signs with (mode 600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"api_base": client.api_base, "pbx_id": client.pbx_id, "api_secret": client.api_secret, "fqdn": fqdn})
    )
    os.chmod(path, 0o600)


def load_extensions(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text()) or {}
    return list(data.get("extensions", []))


def _api_base(api: str | None) -> str:
    if api:
        return api.rstrip("/")
    if not ENDPOINTS.exists():
        raise typer.BadParameter("no --api and no .local/endpoints.json: is `make run` running?")
    return str(json.loads(ENDPOINTS.read_text())["pbx_api"])


def _client(state: Path) -> PbxClient:
    if not state.exists():
        raise typer.BadParameter(f"{state} missing: activate first")
    s = json.loads(state.read_text())
    return PbxClient(s["api_base"], s["pbx_id"], s["api_secret"])


def _show(resp: Any) -> None:
    style = "green" if resp.status_code < 400 else "red"
    console.print(f"[{style}]{resp.status_code}[/{style}]")
    if resp.content:
        console.print_json(resp.text)
    if resp.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def activate(
    license: str = typer.Option(..., help="license key"),
    fqdn: str = typer.Option(..., help="the PBX's FQDN"),
    webmeeting_fqdn: str = typer.Option("", help="defaults to meet.<fqdn>"),
    api: str = typer.Option("", help="PBX API base URL"),
    state: Path = typer.Option(DEFAULT_STATE),
) -> None:
    """Activate, keeping pbx_id and api_secret in the state file (mode 600)."""
    client = PbxClient(_api_base(api or None))
    resp = client.activate(license, fqdn, webmeeting_fqdn or f"meet.{fqdn}")
    if resp.status_code == 201:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(
            json.dumps({"api_base": client.api_base, "pbx_id": client.pbx_id, "api_secret": client.api_secret, "fqdn": fqdn})
        )
        os.chmod(state, 0o600)
    _show(resp)


@app.command()
def sync(extensions_file: Path, state: Path = typer.Option(DEFAULT_STATE)) -> None:
    """Sync the extensions listed in a YAML file (key `extensions`)."""
    _show(_client(state).sync(load_extensions(extensions_file)))


@app.command("meeting-put")
def meeting_put(
    pbx_meeting_id: str,
    organizer: str = typer.Option(...),
    name: str = typer.Option(...),
    start: str = typer.Option(..., help="RFC 3339 UTC, e.g. 2026-12-01T09:00:00Z"),
    duration: int = typer.Option(60, help="minutes"),
    comments: str = typer.Option(""),
    participant: list[str] = typer.Option([], help="'Name <email>', repeatable"),
    invite: bool = typer.Option(False, help="send email invitations"),
    state: Path = typer.Option(DEFAULT_STATE),
) -> None:
    """Create or update a meeting."""
    people = []
    for p in participant:
        name_part, _, email = p.partition("<")
        people.append({"name": name_part.strip(), "email": email.rstrip(">").strip()})
    body = {
        "organizer": organizer,
        "name": name,
        "comments": comments,
        "scheduled_start": start,
        "duration_minutes": duration,
        "participants": people,
        "send_invitations": invite,
    }
    _show(_client(state).put_meeting(pbx_meeting_id, body))


@app.command("meeting-delete")
def meeting_delete(pbx_meeting_id: str, state: Path = typer.Option(DEFAULT_STATE)) -> None:
    """Delete a meeting."""
    _show(_client(state).delete_meeting(pbx_meeting_id))


@app.command()
def reports(status: str = "pending", state: Path = typer.Option(DEFAULT_STATE)) -> None:
    """List meeting reports."""
    _show(_client(state).reports(status))


# --- the PBX-side endpoints ---------------------------------------------------------------------


DEFAULT_DIALIN = {"conference_number": "800", "dial_in": [{"country": "DE", "number": "+49 30 1234567"}]}


def make_server(state_dir: Path, inbox: Path) -> web.Application:
    """PBX-side endpoints for every simulated PBX, told apart by the Host header:
    GET /webmeeting/v1/dialin and POST /webmeeting/v1/reports, both requiring the platform's
    signature with that PBX's secret (``state_dir/<fqdn>.json``, optional key ``dialin``; for
    attacks on the platform's egress: ``dialin_redirect`` answers 302 to that URL,
    ``dialin_padding`` pads the answer with that many bytes).
    A file ``state_dir/<fqdn>.down`` makes that PBX answer 503; received reports are kept in
    ``inbox/<fqdn>/`` (``<id>.json``, and a line per delivery in ``received.log``), and a file
    ``inbox/<fqdn>/REFUSE`` makes the receiver answer 503."""

    def error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"error": {"code": code, "message": message}}, status=status)

    async def pbx_state(request: web.Request, body: bytes) -> tuple[str, dict[str, Any]]:
        fqdn = (request.host or "").split(":")[0].lower()
        path = state_dir / f"{fqdn}.json"
        if not fqdn or not path.exists():
            raise web.HTTPNotFound(
                text=json.dumps({"error": {"code": "not_found", "message": "no such PBX"}}), content_type="application/json"
            )
        state = json.loads(path.read_text())
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            parsed = signing.parse_headers(headers)
            if not hmac.compare_digest(parsed.pbx_id, state["pbx_id"]):
                raise signing.SignatureError("unknown pbx")
            signing.check(parsed, state["api_secret"].encode(), request.method, request.raw_path, body, int(time.time()), 300)
        except signing.SignatureError as exc:
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": {"code": "unauthenticated", "message": str(exc)}}), content_type="application/json"
            ) from exc
        return fqdn, state

    async def dialin_handler(request: web.Request) -> web.Response:
        fqdn, state = await pbx_state(request, b"")
        if (state_dir / f"{fqdn}.down").exists():
            return error(503, "unavailable", "this PBX is down")
        if state.get("dialin_redirect"):
            raise web.HTTPFound(state["dialin_redirect"])
        answer = dict(state.get("dialin", DEFAULT_DIALIN))
        if state.get("dialin_padding"):
            answer["padding"] = "x" * int(state["dialin_padding"])
        return web.json_response(answer)

    async def report_handler(request: web.Request) -> web.Response:
        body = await request.read()
        fqdn, _ = await pbx_state(request, body)
        box = inbox / fqdn
        box.mkdir(parents=True, exist_ok=True)
        if (box / "REFUSE").exists() or (state_dir / f"{fqdn}.down").exists():
            return error(503, "unavailable", "refusing")
        report = json.loads(body)
        (box / f"{report.get('id', time.time_ns())}.json").write_bytes(body)
        with (box / "received.log").open("a") as log:  # one line per delivery: duplicates show
            log.write(f"{report.get('id')}\n")
        return web.Response(status=204)

    application = web.Application()
    application.router.add_get("/webmeeting/v1/dialin", dialin_handler)
    application.router.add_post("/webmeeting/v1/reports", report_handler)
    return application


@app.command()
def serve(
    port: int = typer.Option(..., help="port on 127.0.0.1"),
    state_dir: Path = typer.Option(PBXS_DIR, help="one <fqdn>.json per simulated PBX"),
    inbox: Path = typer.Option(ROOT / ".local" / "pbx-sim" / "reports"),
) -> None:
    """Serve the PBX-side endpoints of the contract for every simulated PBX."""
    state_dir.mkdir(parents=True, exist_ok=True)
    web.run_app(make_server(state_dir, inbox), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    app()

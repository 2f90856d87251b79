"""Operator CLI: ``python -m webmeeting.cli.admin --help``.

Every command runs as an operator with the admin role (``--operator``, default: your login
name): it goes through the same audited operations as the operator console
(``services.operations``), so the audit log shows who did what from the CLI as well.

``--local``: against the platform ``make run`` started (it reads ``.local/endpoints.json`` and
``.local/settings.json``; no environment variables needed). Without it: production, with the
operator's Google credentials and the portal's settings in the environment
(``GOOGLE_CLOUD_PROJECT``, ``WEBMEETING_PUBLIC_BASE_URL``, ``WEBMEETING_CONVERTERS``, ...).

Every failure is one line on stderr saying what to do, with a non-zero exit; never a traceback.
"""

from __future__ import annotations

import functools
import getpass
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from webmeeting import errors, runtime
from webmeeting.adapters import firestore as fs
from webmeeting.domain.operators import Action, Operator, Role
from webmeeting.services import licenses as svc
from webmeeting.services import mcus as mcu_svc
from webmeeting.services import operations as ops
from webmeeting.services import operators as operators_svc
from webmeeting.services import recordings as rec_svc
from webmeeting.settings import MissingSetting

CHECKOUT = Path(__file__).resolve().parents[2]


def local_state() -> Path:
    """The running local platform's state: ``.local/`` of the checkout the CLI runs from."""
    here = Path.cwd() / ".local"
    return here if here.exists() else CHECKOUT / ".local"


app = typer.Typer(help="webmeeting administration", no_args_is_help=True, pretty_exceptions_enable=False)
lic_app = typer.Typer(help="the license registry", no_args_is_help=True)
app.add_typer(lic_app, name="licenses")
mcu_app = typer.Typer(help="the MCU registry", no_args_is_help=True)
app.add_typer(mcu_app, name="mcus")
rec_app = typer.Typer(help="recordings and their converters", no_args_is_help=True)
app.add_typer(rec_app, name="recordings")
conv_app = typer.Typer(help="recording converters", no_args_is_help=True)
app.add_typer(conv_app, name="converters")
privacy_app = typer.Typer(help="data-subject rights: export and erasure", no_args_is_help=True)
app.add_typer(privacy_app, name="privacy")
pbx_app = typer.Typer(help="PBXs", no_args_is_help=True)
app.add_typer(pbx_app, name="pbx")
retention_app = typer.Typer(help="retention: what is held and when it goes", no_args_is_help=True)
app.add_typer(retention_app, name="retention")
rep_app = typer.Typer(help="meeting reports (personal data partially redacted)", no_args_is_help=True)
app.add_typer(rep_app, name="reports")
op_app = typer.Typer(help="who may use the operator console, with which role", no_args_is_help=True)
app.add_typer(op_app, name="operators")
audit_app = typer.Typer(help="the operators' audit log", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

_operator: dict[str, str] = {}


def me() -> Operator:
    """The operator this CLI acts as (admin: the CLI holds the project's credentials)."""
    return Operator(_operator.get("email") or f"{getpass.getuser()}@cli", Role.ADMIN, "cli")


class Unusable(Exception):
    """The CLI cannot run as asked: its message says what to do."""


def console() -> Console:
    """A console sized to the terminal at call time (COLUMNS honoured)."""
    return Console()


def _fail(exc: errors.WebmeetingError) -> None:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc.message}")
    raise typer.Exit(1)


def one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """The project's errors as one line and exit status 1 (also under typer's test runner)."""

    @functools.wraps(command)
    def run_command(*args: Any, **kwargs: Any) -> None:
        if not runtime.backends().project:
            raise Unusable(
                "GOOGLE_CLOUD_PROJECT is not set: set it (and your credentials) for production, "
                "or act on the local platform with --local (after `make run`)"
            )
        try:
            command(*args, **kwargs)
        except errors.WebmeetingError as exc:
            _fail(exc)

    return run_command


def local_environment(state: Path | None = None) -> dict[str, str]:
    """The environment of the running local platform's functions."""
    state = state or local_state()
    if not (state / "endpoints.json").exists() or not (state / "settings.json").exists():
        raise Unusable(f"no local platform is running ({state}/endpoints.json is missing): start it with `make run`")
    env: dict[str, str] = json.loads((state / "settings.json").read_text())
    return env


@app.callback()
def main(
    local: bool = typer.Option(False, "--local", help="act on the platform `make run` started (reads .local/)"),
    operator: str = typer.Option("", "--operator", help="who you are in the audit log (default: your login name)"),
) -> None:
    """webmeeting administration."""
    _operator["email"] = operator.strip().lower()
    if local:
        runtime.use_environment(local_environment())
        fs.reset_client()


@lic_app.command("add")
@one_line_errors
def add(
    edition: str = typer.Option("professional", help="edition name"),
    days: int = typer.Option(365, min=1, help="valid for this many days from now"),
    max_participants: int = typer.Option(25, min=2, max=1000),
    recording: bool = typer.Option(True, help="recording allowed"),
    key: str = typer.Option("", help="use this key instead of a generated one"),
) -> None:
    """Add a license; prints its key."""
    lic = ops.audited(
        me(),
        Action.MANAGE_LICENSES,
        "licenses",
        lambda: svc.add_license(
            edition=edition,
            expires_at=datetime.now(UTC) + timedelta(days=days),
            max_participants=max_participants,
            recording=recording,
            key=key or None,
        ),
    )
    console().print(lic.key)


@lic_app.command("list")
@one_line_errors
def list_() -> None:
    """List licenses with their limits and bindings."""
    table = Table()
    table.add_column("key", no_wrap=True)
    for name in ("edition", "expires", "max", "rec", "state"):
        table.add_column(name)
    table.add_column("bound FQDN", no_wrap=True)
    for lic in ops.licenses(me()):
        table.add_row(
            lic["key"],
            lic["edition"],
            lic["expires_at"].date().isoformat(),
            str(lic["max_participants"]),
            "yes" if lic["recording"] else "no",
            lic["state"],
            lic["bound_fqdn"] or "",
        )
    console().print(table)


@lic_app.command("revoke")
@one_line_errors
def revoke(key: str) -> None:
    """Revoke a license: activations and re-activations with it are refused."""
    ops.audited(me(), Action.MANAGE_LICENSES, f"license:{key}", lambda: svc.revoke_license(key))
    console().print(f"revoked {key}")


@lic_app.command("unbind")
@one_line_errors
def unbind(fqdn: str) -> None:
    """Release a PBX FQDN from its license and delete all of that PBX's data."""
    pbx_id = ops.audited(me(), Action.MANAGE_LICENSES, f"fqdn:{fqdn}", lambda: svc.unbind_fqdn(fqdn))
    console().print(f"unbound {fqdn}; deleted the data of PBX {pbx_id}")


@mcu_app.command("list")
@one_line_errors
def mcus_list() -> None:
    """MCUs with status, load and how many PBXs have each as their default."""
    table = Table()
    table.add_column("id", no_wrap=True)
    for name in ("region", "status", "load", "capacity", "PBXs", "live meetings"):
        table.add_column(name)
    table.add_column("url", no_wrap=True)
    for m in ops.mcus(me()):
        table.add_row(
            m["id"], m["region"], m["status"], str(m["load"]), str(m["capacity"]), str(m["pbxs"]), str(len(m["live"])), m["url"]
        )
    console().print(table)


@mcu_app.command("deprecate")
@one_line_errors
def mcus_deprecate(mcu_id: str) -> None:
    """Take no new PBXs or meetings on this MCU: PBXs move at their next sync, joins at once."""
    ops.audited(me(), Action.MCU_STATUS, f"mcu:{mcu_id}", lambda: mcu_svc.set_status(mcu_id, "deprecated"))
    console().print(f"deprecated {mcu_id}")


@mcu_app.command("restore")
@one_line_errors
def mcus_restore(mcu_id: str) -> None:
    """Make a deprecated MCU active again."""
    ops.audited(me(), Action.MCU_STATUS, f"mcu:{mcu_id}", lambda: mcu_svc.set_status(mcu_id, "active"))
    console().print(f"restored {mcu_id}")


@rep_app.command("list")
@one_line_errors
def reports_list(
    pbx: str = typer.Option("", help="only this PBX's reports"),
    limit: int = typer.Option(20, min=1, max=500),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
) -> None:
    """Recent meeting reports as support staff may see them: names and emails partially
    redacted until the report is sanitized (then they are gone)."""
    rows = ops.reports(me(), pbx)[:limit]
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, default=str))
        return
    table = Table()
    for name in ("id", "pbx", "meeting", "ended", "status", "push", "participants"):
        table.add_column(name, overflow="fold")
    for r in rows:
        people = "; ".join(
            f"{p['name']}{' <' + p['email'] + '>' if p.get('email') else ''} {p['connected_seconds']} s/{p['reconnects']}"
            for p in r["participants"]
        )
        table.add_row(
            r["id"][:12], r["pbx_id"], r["meeting_name"] or "-", str(r["ended_at"])[:19], r["status"], str(r["push"]), people
        )
    console().print(table)


@rec_app.command("list")
@one_line_errors
def recordings_list(status: str = typer.Option("", help="only recordings in this state")) -> None:
    """Recordings with their state, converter, attempts and last error."""

    table = Table()
    for name in ("id", "status", "converter", "attempts", "created", "error"):
        table.add_column(name, overflow="fold")
    rows = ops.recordings(me(), status=status) if status else _all_recordings()
    for r in rows:
        table.add_row(
            r["id"], r["status"], str(r["converter"] or "-"), str(r["attempts"]), str(r["created_at"])[:19], str(r["error"] or "")
        )
    console().print(table)


def _all_recordings() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for state in ("recording", "uploaded", "converting", "ready", "failed"):
        rows += ops.recordings(me(), status=state)
    return rows


@rec_app.command("retry")
@one_line_errors
def recordings_retry(recording_id: str, converter: str = typer.Option("", help="convert on this converter")) -> None:
    """Convert a failed recording again, on a chosen converter (or the usual choice)."""

    chosen = ops.audited(
        me(),
        Action.RECORDING_RETRY,
        f"recording:{recording_id}",
        lambda: rec_svc.admin_retry(recording_id, converter or None, runtime.settings()),
    )
    console().print(f"retrying {recording_id} on {chosen}")


@conv_app.command("list")
@one_line_errors
def converters_list() -> None:
    """Configured converters, whether they take work, and the fallback for failed conversions."""

    table = Table()
    for name in ("id", "region", "available", "fallback"):
        table.add_column(name)
    for c in ops.converters(me())["converters"]:
        table.add_row(c["id"], c["region"], "yes" if c["available"] else "no", "yes" if c["fallback"] else "")
    console().print(table)


@conv_app.command("fallback")
@one_line_errors
def converters_fallback(converter: str = typer.Argument(..., help="converter id, or 'none'")) -> None:
    """The converter a failed conversion is retried on."""

    ops.set_fallback(me(), None if converter == "none" else converter)
    console().print(f"fallback converter: {converter}")


@conv_app.command("disable")
@one_line_errors
def converters_disable(converter: str) -> None:
    """Take a converter out of the choice (maintenance, an outage in its region)."""

    ops.set_available(me(), converter, False)
    console().print(f"disabled {converter}")


@conv_app.command("enable")
@one_line_errors
def converters_enable(converter: str) -> None:

    ops.set_available(me(), converter, True)
    console().print(f"enabled {converter}")


@privacy_app.command("export")
@one_line_errors
def privacy_export(
    pbx: str = typer.Option("", help="everything held about this PBX"),
    email: str = typer.Option("", help="everything held about this email address"),
) -> None:
    """Everything the platform holds about a PBX or an email address, with the audit log's
    entries that name its records, as JSON on stdout."""
    if bool(pbx) == bool(email):
        Console(stderr=True, soft_wrap=True).print("[red]error:[/red] give --pbx or --email")
        raise typer.Exit(2)
    data = ops.export_subject(me(), email=email, pbx_id=pbx)
    typer.echo(json.dumps(data, default=str, indent=2, sort_keys=True))


@privacy_app.command("erase")
@one_line_errors
def privacy_erase(email: str = typer.Option(..., help="the address to erase")) -> None:
    """Erase an email address from invitations, reports and unsent mails; list the PBXs that
    hold it as an extension's email (erase it there: the next sync removes it here)."""
    typer.echo(json.dumps(ops.erase_subject(me(), email), indent=2))


@pbx_app.command("list")
@one_line_errors
def pbx_list(as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table")) -> None:
    """Activated PBXs: id, FQDN, license, last sync, default MCU."""
    rows = ops.pbxs(me())
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, default=str))
        return
    table = Table()
    for name in ("id", "fqdn", "license", "last sync", "mcu"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(r["id"], r["pbx_fqdn"], r["license_key"], str(r["last_sync_at"] or "never")[:19], r["mcu_id"] or "-")
    console().print(table)


@pbx_app.command("delete")
@one_line_errors
def pbx_delete(pbx_id: str, yes: bool = typer.Option(False, "--yes", help="no confirmation")) -> None:
    """Delete a PBX and everything held about it (manual deletion)."""
    if not yes:
        typer.confirm(f"delete PBX {pbx_id} and all its data?", abort=True)
    ops.delete_pbx(me(), pbx_id, queue=False)
    console().print(f"deleted PBX {pbx_id} and all its data")


@retention_app.command("report")
@one_line_errors
def retention_report(pbx: str = typer.Option(..., help="the PBX")) -> None:
    """What is held for a PBX and when each item expires."""

    rows = ops.pbx(me(), pbx)["held"]
    table = Table()
    for name in ("item", "expires", "in", "rule"):
        table.add_column(name, overflow="fold")
    for r in rows:
        days = r["in"].total_seconds() / 86400
        table.add_row(r["item"], str(r["expires"])[:19], f"{days:.1f} days", r["rule"])
    console().print(table)


@op_app.command("add")
@one_line_errors
def operators_add(
    email: str, role: Role = typer.Option(..., help="support: redacted views; admin: in full, and actions")
) -> None:
    """Give an address (as Google signs it in) a role in the operator console."""
    console().print(f"{operators_svc.set_role(me(), email, role)}: {role}")


@op_app.command("remove")
@one_line_errors
def operators_remove(email: str) -> None:
    """Take an address's role away: the console answers it 403 from its next request."""
    operators_svc.remove(me(), email)
    console().print(f"removed {email}")


@op_app.command("list")
@one_line_errors
def operators_list() -> None:
    """Who has which role."""
    table = Table()
    for name in ("email", "role", "since", "by"):
        table.add_column(name, overflow="fold")
    for o in sorted(operators_svc.listing(me()), key=lambda o: o["email"]):
        table.add_row(o["email"], o.get("role", ""), str(o.get("updated_at"))[:19], o.get("by", ""))
    console().print(table)


@audit_app.command("list")
@one_line_errors
def audit_list(as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table")) -> None:
    """The newest entries of the audit log (viewing it is an entry too)."""
    rows = operators_svc.recent(me())
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r, default=str))
        return
    table = Table()
    for name in ("when", "operator", "role", "via", "action", "target", "outcome"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(str(r["at"])[:19], r["operator"], r["role"], r["via"], r["action"], r["target"], r["outcome"])
    console().print(table)


def run(argv: list[str] | None = None) -> int:
    """The CLI as a process runs it: a failure is one line on stderr and exit status 1."""
    try:
        code = app(args=argv, standalone_mode=False)  # a command's typer.Exit comes back as its code
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        Console(stderr=True, soft_wrap=True).print("[red]error:[/red] aborted: nothing was changed", highlight=False)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            typer.echo(ctx.get_help())
            return 0
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):  # a usage error
            where = ctx.command_path if ctx is not None else "python -m webmeeting.cli.admin"
            Console(stderr=True, soft_wrap=True).print(
                f"[red]error:[/red] {exc.format_message()} (see {where} --help)", highlight=False
            )
            return int(exc.exit_code)  # type: ignore[attr-defined]
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {_explain(exc)}", markup=True, highlight=False)
        return 1
    return code if isinstance(code, int) else 0


def _explain(exc: BaseException) -> str:
    if isinstance(exc, Unusable):
        return str(exc)
    if isinstance(exc, MissingSetting):
        return f"{exc}; against the local platform run with --local (after `make run`)"
    if isinstance(exc, errors.WebmeetingError):
        return exc.message
    name = type(exc).__name__
    if name in ("ServiceUnavailable", "RetryError", "DeadlineExceeded") or isinstance(exc, ConnectionError):
        return "Firestore did not answer: is the platform running (`make run`), or are your credentials for this project?"
    if name in ("DefaultCredentialsError", "PermissionDenied", "Forbidden", "Unauthenticated"):
        return f"{name}: log in with `gcloud auth application-default login` as an operator of the project"
    return f"{name}: {str(exc).splitlines()[0] if str(exc) else 'unexpected failure'}"


if __name__ == "__main__":
    sys.exit(run())

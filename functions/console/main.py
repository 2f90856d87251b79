"""Cloud Function ``console``: the operator console under ``/console`` (server-rendered pages,
no script, no cookie).

Who calls: only what the load balancer's Identity-Aware Proxy let through (production), or the
local front door's dev sign-in (locally): both add IAP's signed header, verified here
(``adapters.iap``) to a Google-verified email, mapped to a role kept in Firestore
(``services.operators``). No role: 403 and nothing else. Everything shown or done goes through
``services.operations`` (role checks, redaction, the audit log), the same operations the admin
CLI runs.

Forms: every POST carries a token bound to the operator, the action and its target
(``domain.operators.confirmation``); destructive actions get theirs only from a confirmation page,
so a form posted from another site (the browser would attach IAP's own session) does nothing.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flask
import functions_framework
from jinja2 import Environment, FileSystemLoader, select_autoescape

from webmeeting import errors, http, runtime
from webmeeting.adapters import iap
from webmeeting.domain import operators as rules
from webmeeting.domain.operators import Action, Operator
from webmeeting.services import operations as ops
from webmeeting.services import operators as audit

PREFIX = "/console"
FORM_LIMIT = 4096  # bytes of a posted form
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FQDN = re.compile(r"^[A-Za-z0-9.-]{1,253}$")

_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape())
_env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M:%S") if isinstance(v, datetime) else ("-" if v is None else str(v))

HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _page(template: str, op: Operator | None, status: int = 200, **ctx: Any) -> flask.Response:
    body = _env.get_template(template).render(op=op, admin=op is not None and op.role is rules.Role.ADMIN, **ctx)
    return flask.Response(body, status=status, headers=HEADERS)


def _error_page(status: int, code: str, message: str) -> flask.Response:
    # no operator context: a caller without a role learns nothing beyond the refusal
    return _page("error.html", None, status, http_status=status, code=code, message=message)


def _operator(request: flask.Request) -> Operator:
    email = iap.verified_email(request.headers.get(iap.HEADER), runtime.settings().iap_audience)
    return audit.operator_for(email)


def _token(op: Operator, action: Action, target: str) -> str:
    return rules.confirmation(runtime.settings().secret_key, op, action, target, int(time.time()) + rules.CONFIRM_TTL_S)


def _form(request: flask.Request) -> dict[str, str]:
    """A posted form, from this console's own pages only."""
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    public = urlsplit(runtime.settings().public_base_url)
    # the pages send no referrer, so a browser's form posts say "Origin: null"; Sec-Fetch-Site
    # still tells a post from these pages from one of another site
    if (site and site != "same-origin") or (origin and origin not in ("null", f"{public.scheme}://{public.netloc}")):
        raise errors.Forbidden("forms are accepted from the console's own pages only")
    body = http.read_body(request, FORM_LIMIT)
    if request.mimetype != "application/x-www-form-urlencoded":
        raise errors.InvalidRequest("a form is expected")
    from urllib.parse import parse_qs

    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8, keep_blank_values=True)
    return {k: v[0].strip() for k, v in fields.items() if v}


def _checked(op: Operator, form: dict[str, str], action: Action, target: str) -> None:
    if not rules.confirmed(runtime.settings().secret_key, form.get("token", ""), op, action, target, time.time()):
        raise errors.Forbidden("this form has expired or was not issued to you: open the page again")


def _arg(request: flask.Request, name: str, pattern: re.Pattern[str]) -> str:
    value = request.args.get(name, "").strip()
    if value and not pattern.match(value):
        raise errors.InvalidRequest(f"{name}: not a valid value")
    return value


# --- pages -----------------------------------------------------------------------------------------


def _home(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    return _page("home.html", op)


def _pbxs(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    return _page("pbxs.html", op, rows=ops.pbxs(op))


def _pbx(request: flask.Request, m: re.Match[str]) -> flask.Response:
    op = _operator(request)
    return _page("pbx.html", op, pbx=ops.pbx(op, m.group(1)))


def _licenses(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    return _page("licenses.html", op, rows=ops.licenses(op))


def _mcus(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    return _page("mcus.html", op, rows=ops.mcus(op))


def _meeting(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    key = _arg(request, "key", ID)
    if not key:
        return _page("meeting.html", op, meeting=None)
    meeting = ops.meeting(op, key)
    return _page("meeting.html", op, meeting=meeting, links=_links(op, meeting["recordings"]))


def _links(op: Operator, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Admins: a form token per ready recording (its signed link is made on request)."""
    if op.role is not rules.Role.ADMIN:
        return {}
    return {r["id"]: _token(op, Action.RECORDING_LINK, f"recording:{r['id']}") for r in rows if r["status"] == "ready"}


def _recordings(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    query = {
        "meeting_key": _arg(request, "meeting", ID),
        "fqdn": _arg(request, "fqdn", FQDN),
        "license_key": _arg(request, "license", ID),
    }
    rows = ops.recordings(op, **query) if any(query.values()) else None
    return _page("recordings.html", op, rows=rows, query=query, links=_links(op, rows or []))


def _recording_link(request: flask.Request, m: re.Match[str]) -> flask.Response:
    op = _operator(request)
    form = _form(request)
    audit.authorize(op, Action.RECORDING_LINK, f"recording:{m.group(1)}")
    _checked(op, form, Action.RECORDING_LINK, f"recording:{m.group(1)}")
    url = ops.recording_link(op, m.group(1))
    return _page("recording_link.html", op, url=url, minutes=int(ops.LINK_TTL.total_seconds() // 60), recording=m.group(1))


def _reports(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    pbx_id = _arg(request, "pbx", ID)
    return _page("reports.html", op, rows=ops.reports(op, pbx_id), pbx=pbx_id)


def _converters(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    view = ops.converters(op)
    return _page("converters.html", op, **view)


def _privacy(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    audit.authorize(op, Action.PRIVACY_EXPORT, "privacy")
    return _page("privacy.html", op, token=_token(op, Action.PRIVACY_EXPORT, "export"))


def _export(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    form = _form(request)
    audit.authorize(op, Action.PRIVACY_EXPORT, "privacy")
    _checked(op, form, Action.PRIVACY_EXPORT, "export")
    email, pbx_id = form.get("email", ""), form.get("pbx", "")
    if pbx_id and not ID.match(pbx_id):
        raise errors.InvalidRequest("pbx: not a valid value")
    export = ops.export_subject(op, email=email, pbx_id=pbx_id)
    body = json.dumps(export, default=str, indent=2)
    return flask.Response(
        body,
        headers={
            **HEADERS,
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": 'attachment; filename="webmeeting-export.json"',
        },
    )


# --- the confirmation step ---------------------------------------------------------------------------


# what a destructive form asks, as (action, the target it names, how the page says it)
def _intent(form: dict[str, str]) -> tuple[Action, str, str, dict[str, str]]:
    what = form.get("what", "")
    if what == "erase":
        address = rules.normalize_email(form.get("email", ""))
        if address is None:
            raise errors.InvalidRequest("not an email address")
        target = rules.subject_ref(runtime.settings().secret_key, address)  # the audit log never holds the address
        return Action.PRIVACY_ERASE, target, f"erase {address} wherever the platform holds it", {"email": address}
    if what == "delete":
        pbx_id = form.get("pbx", "")
        if not ID.match(pbx_id):
            raise errors.InvalidRequest("pbx: not a valid value")
        return Action.PBX_DELETE, f"pbx:{pbx_id}", f"delete PBX {pbx_id} and everything held about it", {"pbx": pbx_id}
    converter = form.get("converter", "")
    if what in ("fallback", "disable", "enable") and (converter == "none" or ID.match(converter)):
        if what == "fallback":
            return (
                Action.CONVERTER_FALLBACK,
                f"converter:{converter}",
                f"make {converter} the fallback converter",
                {"converter": converter},
            )
        return (
            Action.CONVERTER_AVAILABILITY,
            f"{what}:converter:{converter}",
            f"{what} converter {converter}",
            {"converter": converter},
        )
    raise errors.InvalidRequest("unknown action")


def _confirm(request: flask.Request, _: re.Match[str]) -> flask.Response:
    """Step one: says what will happen; nothing changes. The page's form carries the token."""
    op = _operator(request)
    form = _form(request)
    action, target, sentence, fields = _intent(form)
    audit.authorize(op, action, target)
    return _page("confirm.html", op, sentence=sentence, what=form["what"], fields=fields, token=_token(op, action, target))


def _do(request: flask.Request, _: re.Match[str]) -> flask.Response:
    """Step two: the confirmed action."""
    op = _operator(request)
    form = _form(request)
    action, target, sentence, fields = _intent(form)
    audit.authorize(op, action, target)
    _checked(op, form, action, target)
    if action is Action.PRIVACY_ERASE:
        result: Any = ops.erase_subject(op, fields["email"])
    elif action is Action.PBX_DELETE:
        result = {"outcome": ops.delete_pbx(op, fields["pbx"], queue=True)}
    elif action is Action.CONVERTER_FALLBACK:
        ops.set_fallback(op, None if fields["converter"] == "none" else fields["converter"])
        result = {"fallback": fields["converter"]}
    else:
        ops.set_available(op, fields["converter"], form["what"] == "enable")
        result = {form["what"]: fields["converter"]}
    return _page("done.html", op, sentence=sentence, result=result)


def _audit(request: flask.Request, _: re.Match[str]) -> flask.Response:
    op = _operator(request)
    return _page("audit.html", op, rows=audit.recent(op))


STYLE = (Path(__file__).parent / "assets" / "console.css").read_bytes()


def _style(request: flask.Request, _: re.Match[str]) -> flask.Response:
    _operator(request)  # behind the same door as every page
    return flask.Response(
        STYLE, headers={**HEADERS, "Content-Type": "text/css; charset=utf-8", "Cache-Control": "private, max-age=300"}
    )


GET, POST = {"GET"}, {"POST"}
ROUTES = http.Router(
    PREFIX,
    [
        http.route("/?", GET, _home),
        http.route("/pbxs", GET, _pbxs),
        http.route("/pbxs/([A-Za-z0-9_-]{1,64})", GET, _pbx),
        http.route("/licenses", GET, _licenses),
        http.route("/mcus", GET, _mcus),
        http.route("/meetings", GET, _meeting),
        http.route("/recordings", GET, _recordings),
        http.route("/recordings/([0-9a-f]{32})/link", POST, _recording_link),
        http.route("/reports", GET, _reports),
        http.route("/converters", GET, _converters),
        http.route("/privacy", GET, _privacy),
        http.route("/privacy/export", POST, _export),
        http.route("/confirm", POST, _confirm),
        http.route("/do", POST, _do),
        http.route("/audit", GET, _audit),
        http.route("/assets/console.css", GET, _style),
    ],
    render_error=_error_page,
)


@functions_framework.http
def console(request: flask.Request) -> flask.Response:
    return ROUTES(request)

"""Composing the platform's mails: Jinja2 templates (plain text + HTML) and an .ics (icalendar)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path
from typing import Any

import icalendar
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from webmeeting.adapters.smtp import sender

TEMPLATES = Path(__file__).parent / "mail_templates"
SUBJECTS = {"invite": "Invitation: {name}", "update": "Updated: {name}", "cancel": "Cancelled: {name}"}

_html = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), undefined=StrictUndefined)
_text = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False, undefined=StrictUndefined)  # noqa: S701 - plain text


def calendar_uid(meeting_key: str) -> str:
    return f"{hashlib.sha256(meeting_key.encode()).hexdigest()[:32]}@webmeeting"


def ics(kind: str, meeting: dict[str, Any], email: str, name: str) -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//webmeeting//invitations//EN")
    cal.add("version", "2.0")
    cal.add("method", "CANCEL" if kind == "cancel" else "REQUEST")
    event = icalendar.Event()
    start: datetime = meeting["start"]
    event.add("uid", meeting["uid"])
    event.add("dtstamp", meeting["stamp"])
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=int(meeting["duration_minutes"])))
    event.add("sequence", int(meeting["sequence"]))
    event.add("summary", meeting["name"])
    if meeting.get("comments"):
        event.add("description", f"{meeting['comments']}\n\n{meeting['url']}")
    else:
        event.add("description", meeting["url"])
    event.add("location", meeting["url"])
    event.add("url", meeting["url"])
    event.add("status", "CANCELLED" if kind == "cancel" else "CONFIRMED")
    organizer = icalendar.vCalAddress(f"mailto:{sender().rsplit('<', 1)[-1].rstrip('>')}")
    organizer.params["cn"] = icalendar.vText(meeting["organizer_name"])
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{email}")
    attendee.params["cn"] = icalendar.vText(name)
    attendee.params["role"] = icalendar.vText("REQ-PARTICIPANT")
    event.add("attendee", attendee)
    cal.add_component(event)
    return bytes(cal.to_ical())


def compose(kind: str, meeting: dict[str, Any], email: str, name: str, mail_id: str) -> EmailMessage:
    """One invitation, update or cancellation, addressed to ``name <email>``."""
    ctx = {"kind": kind, "meeting": meeting, "name": name}
    msg = EmailMessage()
    msg["Subject"] = SUBJECTS[kind].format(name=meeting["name"])
    msg["From"] = sender()
    msg["To"] = formataddr((name, email))
    msg["Message-ID"] = make_msgid(idstring=mail_id, domain="webmeeting.local")
    msg["X-Webmeeting-Mail-Id"] = mail_id  # one id per mail: lets anyone check it arrived once
    msg.set_content(_text.get_template("meeting.txt").render(**ctx))
    msg.add_alternative(_html.get_template("meeting.html").render(**ctx), subtype="html")
    method = "CANCEL" if kind == "cancel" else "REQUEST"
    msg.add_attachment(
        ics(kind, meeting, email, name), maintype="text", subtype="calendar", filename="meeting.ics", params={"method": method}
    )
    return msg


def _minutes(seconds: int) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600} h {seconds % 3600 // 60:02d} min {seconds % 60:02d} s"
        if seconds >= 3600
        else f"{seconds // 60} min {seconds % 60:02d} s"
    )


def compose_report(report: dict[str, Any], timeline: list[dict[str, float]], email: str, name: str, mail_id: str) -> EmailMessage:
    """The organizer's meeting report: a table and the attendance timeline chart (inline PNG)."""
    from webmeeting.chart import timeline_png  # Pillow: only the mail sender needs it

    duration_s = (report["ended_at"] - report["started_at"]).total_seconds()
    chart = timeline_png([p["name"] for p in report["participants"]], timeline, duration_s)
    cid = make_msgid(idstring="timeline", domain="webmeeting.local")
    ctx = {"name": name, "report": report, "duration": _minutes(round(duration_s)), "minutes": _minutes, "chart_cid": cid[1:-1]}
    msg = EmailMessage()
    msg["Subject"] = f"Meeting report: {report['meeting_name']}"
    msg["From"] = sender()
    msg["To"] = formataddr((name, email))
    msg["Message-ID"] = make_msgid(idstring=mail_id, domain="webmeeting.local")
    msg["X-Webmeeting-Mail-Id"] = mail_id
    msg.set_content(_text.get_template("report.txt").render(**ctx))
    msg.add_alternative(_html.get_template("report.html").render(**ctx), subtype="html")
    html_part = msg.get_body(("html",))
    assert html_part is not None
    html_part.add_related(chart, maintype="image", subtype="png", cid=cid, filename="attendance.png")
    msg.add_attachment(chart, maintype="image", subtype="png", filename="attendance.png")
    return msg


def _envelope(subject: str, email: str, name: str, mail_id: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender()
    msg["To"] = formataddr((name, email))
    msg["Message-ID"] = make_msgid(idstring=mail_id, domain="webmeeting.local")
    msg["X-Webmeeting-Mail-Id"] = mail_id
    return msg


def compose_recording(
    recording: dict[str, Any], url: str, expires: datetime, email: str, name: str, mail_id: str
) -> EmailMessage:
    """The organizer's link to a finished recording (a signed URL that expires with it)."""
    ctx = {"name": name, "recording": recording, "url": url, "expires": expires, "minutes": _minutes}
    msg = _envelope(f"Recording ready: {recording.get('meeting_name', 'your meeting')}", email, name, mail_id)
    msg.set_content(_text.get_template("recording.txt").render(**ctx))
    msg.add_alternative(_html.get_template("recording.html").render(**ctx), subtype="html")
    return msg


def compose_plain(subject: str, text: str, email: str, name: str, mail_id: str) -> EmailMessage:
    msg = _envelope(subject, email, name, mail_id)
    msg.set_content(text)
    return msg

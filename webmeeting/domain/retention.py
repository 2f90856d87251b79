"""The retention policy table: every promise of the privacy policy about when personal data
disappears, as one rule each: the data it covers, its trigger, its duration, the sentence it
implements, where it is enforced. Pure: the engine (``services.retention``) runs the rules,
``docs/retention.md`` is generated from this table and a test checks every rule has a test.

Durations are defaults; each can be changed with ``WEBMEETING_RETENTION_<RULE>_S`` (seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Rule:
    name: str
    data: str  # what is deleted or cleared
    trigger: str  # the event the duration counts from, or the condition
    duration: timedelta | None  # None: at once, when the condition holds
    policy: str  # the sentence of the privacy policy it implements
    enforced_by: str  # where: an engine sweep (``sweep:<name>``), or the code path named

    @property
    def swept(self) -> bool:
        return "sweep:" in self.enforced_by


RULES: tuple[Rule, ...] = (
    Rule(
        "recordings",
        "recordings: the MP4 in the recordings bucket, raw tracks left, the record",
        "creation of the recording",
        7 * DAY,
        "Recordings are kept for 7 days after their creation, after which they are automatically deleted.",
        "sweep:recordings (+ bucket lifecycle rule and Firestore TTL on expire_at)",
    ),
    Rule(
        "meeting_names",
        "meeting name, comments and invited participants' names",
        "the meeting's scheduled date",
        7 * DAY,
        "Meeting names / comments / participant names are deleted after 7 days from their meeting's scheduled date.",
        "sweep:meeting_names",
    ),
    Rule(
        "participant_emails",
        "invited participants' email addresses",
        "completion of the meeting (scheduled start + duration)",
        7 * DAY,
        "Meeting participant emails are deleted 7 days after the meeting's completion.",
        "sweep:participant_emails",
    ),
    Rule(
        "participant_events",
        "participants' display names and IP addresses as the MCU saw them (participant events)",
        "the meeting (the event's time)",
        7 * DAY,
        "Participant IPs (and names) are kept up to 7 days after the meeting.",
        "sweep:participant_events (+ Firestore TTL on expire_at)",
    ),
    Rule(
        "mails",
        "mail outbox records (recipients are cleared when sent)",
        "creation of the mail",
        7 * DAY,
        "Participant emails are kept no longer than the invitation needs (7 days).",
        "sweep:mails (+ Firestore TTL on expire_at)",
    ),
    Rule(
        "shared_files",
        "files shared in a meeting session (object and record)",
        "the session's participant counter reaches 0 (and a leftover check on every upload)",
        None,
        "Uploaded files are deleted once the meeting session's participant counter reaches 0.",
        "services.lifecycle.after (session end) + services.files.upload (leftovers) + sweep:shared_files",
    ),
    Rule(
        "shared_pdfs",
        "PDFs shared by an organizer",
        "deletion of their meeting or its organizer's extension",
        None,
        "Shared PDFs are deleted with the meeting or the extension that owns them.",
        "services.pbx_api (meeting delete, sync removing the extension) + services.pbx_data.purge_pbx",
    ),
    Rule(
        "polls",
        "polls, their runs and votes",
        "deletion of the owning extension, or explicit delete",
        None,
        "Polls are deleted once the user's extension is deleted or the user deletes the poll.",
        "services.polls.delete + services.pbx_api sync + services.pbx_data.purge_pbx",
    ),
    Rule(
        "reports_sanitize",
        "names, emails and meeting names in meeting reports",
        "creation of the report",
        60 * DAY,
        "Meeting reports are sanitized by removing all personal data every 2 months.",
        "sweep:reports_sanitize",
    ),
    Rule(
        "reports_sanitize_yearly",
        "meeting reports: a second sanitizing pass, also dropping the link to the meeting",
        "creation of the report",
        365 * DAY,
        "... and again once a year for good measure.",
        "sweep:reports_sanitize_yearly",
    ),
    Rule(
        "statistics_anonymize",
        "daily statistics (folded into their month)",
        "the statistic's day",
        60 * DAY,
        "Historical data is anonymized 2 months after it was gathered.",
        "sweep:statistics_anonymize",
    ),
    Rule(
        "statistics_delete",
        "statistics",
        "the statistic's period start",
        365 * DAY,
        "Historical data is kept for up to 1 year.",
        "sweep:statistics_delete (+ Firestore TTL on expire_at)",
    ),
    Rule(
        "server_logs",
        "logs of MCUs, portal, file share, converters",
        "the log entry",
        7 * DAY,
        "System logs are retained for 7 days after which they are automatically deleted.",
        "terraform: the _Default log bucket's retention (7 days)",
    ),
    Rule(
        "pbx_no_contact",
        "all data of the PBX",
        "no authenticated contact from the PBX",
        60 * DAY,
        "PBX sync data is kept while the PBX syncs at least once every 59 days.",
        "sweep:pbx_no_contact",
    ),
    Rule(
        "pbx_dns_meetings",
        "the PBX's meetings (and what hangs on them)",
        "the PBX's FQDN failing DNS resolution on consecutive daily checks",
        14 * DAY,
        "Meeting data is deleted after 14 consecutive days of failed DNS resolution.",
        "sweep:pbx_dns_meetings",
    ),
    Rule(
        "pbx_dns",
        "all data of the PBX",
        "the PBX's FQDN failing DNS resolution on consecutive daily checks",
        30 * DAY,
        "PBX sync data is kept while the PBX can be resolved at least once every 29 days.",
        "sweep:pbx_dns",
    ),
    Rule(
        "pbx_unbound",
        "all data of the PBX",
        "its FQDN unbound from its license (admin), or manual deletion",
        None,
        "All data is deleted when the PBX's FQDN is unbound from its license, or on manual deletion.",
        "services.licenses.unbind_fqdn (admin: licenses unbind) + admin: pbx delete",
    ),
    Rule(
        "audit_log",
        "the operators' audit log: who looked at or changed what, when (identifiers only, never the data)",
        "the entry",
        365 * DAY,
        "Operators have access on a need to know basis (the platform's own rule: each access is recorded, and the record is kept 1 year).",
        "sweep:audit_log (+ Firestore TTL on expire_at)",
    ),
    Rule(
        "chat",
        "chat messages (to everyone and private)",
        "never stored: relayed by the MCU, the session's last 200 held in its memory for late joiners",
        None,
        "Chat: never stored (the platform's own rule: not in Firestore, Storage, any log or report).",
        "mcu_vm/room.py (in memory, gone with the session); no portal endpoint accepts chat",
    ),
)

BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}


def durations(overrides: Mapping[str, float]) -> dict[str, timedelta]:
    """Each timed rule's duration: the table's default or its override in seconds
    (``Backends.retention_s``, from ``WEBMEETING_RETENTION_<NAME>_S``)."""
    return {
        rule.name: timedelta(seconds=overrides[rule.name]) if rule.name in overrides else rule.duration
        for rule in RULES
        if rule.duration is not None
    }


def markdown_table() -> str:
    """The table as docs/retention.md shows it."""
    lines = [
        "| rule | data | trigger | duration | policy | enforced by |",
        "|---|---|---|---|---|---|",
    ]
    for r in RULES:
        duration = "at once" if r.duration is None else f"{r.duration.days} days"
        lines.append(f"| `{r.name}` | {r.data} | {r.trigger} | {duration} | {r.policy} | {r.enforced_by} |")
    return "\n".join(lines)

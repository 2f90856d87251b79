"""Operators of the platform: who may see and do what, on a need-to-know basis (policy: meeting
reports "accessible by the platform admin or support staff with relevant access but with user
identifiable data being partially redacted"; "Platform admins do have access to identifiable
signaling data to troubleshoot platform issues on demand").

Pure: roles, the permission table, the redaction support sees, the audit entry's shape, and the
confirmation a destructive action needs. The console (``functions/console``) and the admin CLI
reach the data only through ``services.operations``, which checks this table and audits.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from webmeeting.domain.reports import redact_email, redact_name

CONFIRM_TTL_S = 600  # a confirmation step's token is good for this long
EMAIL_MAX = 254
EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,63}$")


class Role(StrEnum):
    SUPPORT = "support"  # redacted views only
    ADMIN = "admin"  # unredacted where the policy allows; destructive actions


class Action(StrEnum):
    """Everything an operator can do; every one is audited (``audit_entry``)."""

    VIEW_PBXS = "view_pbxs"
    VIEW_PBX = "view_pbx"
    VIEW_LICENSES = "view_licenses"
    VIEW_MCUS = "view_mcus"
    VIEW_MEETING = "view_meeting"
    VIEW_RECORDINGS = "view_recordings"
    RECORDING_LINK = "recording_link"
    VIEW_REPORTS = "view_reports"
    VIEW_CONVERTERS = "view_converters"
    CONVERTER_FALLBACK = "converter_fallback"
    CONVERTER_AVAILABILITY = "converter_availability"
    PRIVACY_EXPORT = "privacy_export"
    PRIVACY_ERASE = "privacy_erase"
    PBX_DELETE = "pbx_delete"
    VIEW_AUDIT = "view_audit"
    MANAGE_OPERATORS = "manage_operators"
    MANAGE_LICENSES = "manage_licenses"  # add, revoke, unbind (the CLI)
    MCU_STATUS = "mcu_status"  # deprecate, restore (the CLI)
    RECORDING_RETRY = "recording_retry"  # convert a failed recording again (the CLI)


BOTH = frozenset({Role.SUPPORT, Role.ADMIN})
ADMIN_ONLY = frozenset({Role.ADMIN})

PERMISSIONS: dict[Action, frozenset[Role]] = {
    Action.VIEW_PBXS: BOTH,
    Action.VIEW_PBX: BOTH,
    Action.VIEW_LICENSES: BOTH,
    Action.VIEW_MCUS: BOTH,
    Action.VIEW_MEETING: BOTH,
    Action.VIEW_RECORDINGS: BOTH,  # status, converter, attempts: no media
    Action.RECORDING_LINK: ADMIN_ONLY,  # the media itself
    Action.VIEW_REPORTS: BOTH,  # redacted for everyone until sanitized (the policy's words)
    Action.VIEW_CONVERTERS: BOTH,
    Action.CONVERTER_FALLBACK: ADMIN_ONLY,
    Action.CONVERTER_AVAILABILITY: ADMIN_ONLY,
    Action.PRIVACY_EXPORT: ADMIN_ONLY,
    Action.PRIVACY_ERASE: ADMIN_ONLY,
    Action.PBX_DELETE: ADMIN_ONLY,
    Action.VIEW_AUDIT: ADMIN_ONLY,
    Action.MANAGE_OPERATORS: ADMIN_ONLY,
    Action.MANAGE_LICENSES: ADMIN_ONLY,
    Action.MCU_STATUS: ADMIN_ONLY,
    Action.RECORDING_RETRY: ADMIN_ONLY,
}

# actions that delete or change data: they need a confirmation step in the console
DESTRUCTIVE = frozenset({Action.PRIVACY_ERASE, Action.PBX_DELETE, Action.CONVERTER_FALLBACK, Action.CONVERTER_AVAILABILITY})


@dataclass(frozen=True)
class Operator:
    """A caller with a role: ``email`` as Google (IAP) or the dev sign-in verified it, or the
    CLI's operator; ``via``: ``console`` or ``cli``."""

    email: str
    role: Role
    via: str = "console"

    @property
    def sees_identities(self) -> bool:
        """Names, emails and IPs unredacted (admins: the policy's troubleshooting access)."""
        return self.role is Role.ADMIN


def allowed(role: Role | None, action: Action) -> bool:
    return role is not None and role in PERMISSIONS[action]


def normalize_email(email: str) -> str | None:
    """The address in the form roles are kept under, or None when it is not one."""
    text = (email or "").strip().lower()
    if len(text) > EMAIL_MAX or not EMAIL.match(text):
        return None
    return text


def redact_ip(ip: str | None) -> str | None:
    """``203.0.113.7`` -> ``203.0.x.x``; IPv6 keeps its first two groups (the provider's network)."""
    if not ip:
        return ip
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "x"
    if addr.version == 4:
        a, b, _, _ = str(addr).split(".")
        return f"{a}.{b}.x.x"
    groups = addr.exploded.split(":")
    return f"{int(groups[0], 16):x}:{int(groups[1], 16):x}:x::"


@dataclass(frozen=True)
class Shown:
    """How one operator sees personal data: as held, or redacted."""

    operator: Operator

    def name(self, value: str | None) -> str | None:
        return value if self.operator.sees_identities else redact_name(value)

    def email(self, value: str | None) -> str | None:
        return value if self.operator.sees_identities else redact_email(value)

    def ip(self, value: str | None) -> str | None:
        return value if self.operator.sees_identities else redact_ip(value)


def audit_entry(
    operator: Operator, action: Action, target: str, records: list[str], now: datetime, outcome: str
) -> dict[str, object]:
    """One audit log entry: who (their address and role), what, when, on which records. Never
    the personal data itself: ``target`` and ``records`` are identifiers (``meeting:<key>``,
    ``pbx:<id>``, ``recording:<id>``, ``subject:<keyed hash of an address>``)."""
    return {
        "at": now,
        "operator": operator.email,
        "role": str(operator.role),
        "via": operator.via,
        "action": str(action),
        "target": target,
        "records": sorted(set(records))[:30],  # array-contains-any takes 30 values: one query finds any
        "outcome": outcome,
    }


def subject_ref(key: bytes, email: str) -> str:
    """A data subject's address as the audit log names it: a keyed hash (the address itself is
    not kept; the privacy export of that address finds the entries again)."""
    digest = hmac.new(key, b"audit-subject\x00" + email.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]
    return f"subject:{digest}"


def meeting_ref(key: str) -> str:
    """A meeting as the audit log names it: a hash of its key (the key is its link: a credential)."""
    return "meeting:" + hashlib.sha256(b"audit-meeting\x00" + key.encode()).hexdigest()[:24]


def confirmation(key: bytes, operator: Operator, action: Action, target: str, expires: int) -> str:
    """The token a confirmation page carries: this operator, this action on this target, until
    ``expires`` (epoch seconds). A form posted from elsewhere cannot carry one."""
    message = f"confirm\x00{operator.email}\x00{action}\x00{target}\x00{expires}".encode()
    return f"{expires}.{hmac.new(key, message, hashlib.sha256).hexdigest()}"


def confirmed(key: bytes, token: str, operator: Operator, action: Action, target: str, now: float) -> bool:
    expires_text, _, _mac = (token or "").partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires < now or expires > now + CONFIRM_TTL_S:
        return False
    return hmac.compare_digest(confirmation(key, operator, action, target, expires), token)

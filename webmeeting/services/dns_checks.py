"""Daily DNS checks of every PBX's FQDN (dnspython; the resolver is ``WEBMEETING_DNS_SERVER``,
locally the platform's DNS server). A failure starts (or continues) a streak, recorded as the
time of its first failed check; a success ends it. The retention rules ``pbx_dns_meetings``
(14 days) and ``pbx_dns`` (30 days) count from that time."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from webmeeting.adapters import firestore as fs
from webmeeting.adapters import pbx_http, tasks

log = logging.getLogger("webmeeting.dns")

BATCH = 100


def check(pbx_id: str, now: datetime) -> str:
    """Resolve one PBX's FQDN and record the outcome: ok | failing | gone."""
    ref = fs.pbxs().document(pbx_id)
    pbx = fs.data(ref.get())
    if not pbx:
        return "gone"
    try:
        pbx_http.resolve(pbx["pbx_fqdn"])
    except pbx_http.PbxUnreachable as exc:
        update: dict[str, Any] = {"dns_last_failure_at": now, "dns_failures": fs.increment(1)}
        if pbx.get("dns_failing_since") is None:
            update["dns_failing_since"] = now
            update["dns_meetings_purged"] = False
        ref.update(update)
        log.info("PBX %s: %s", pbx_id, exc)
        return "failing"
    ref.update({"dns_ok_at": now, "dns_failing_since": None, "dns_failures": 0, "dns_meetings_purged": False})
    return "ok"


def check_batch(pbx_ids: list[str], now: datetime) -> dict[str, int]:
    out: dict[str, int] = {}
    for pbx_id in pbx_ids:
        outcome = check(pbx_id, now)
        out[outcome] = out.get(outcome, 0) + 1
    return out


def fan_out(project: str, target: str) -> int:
    """The daily job: every PBX, in tasks of ``BATCH`` ids (ids only: no document reads)."""
    ids = [ref.id for ref in fs.pbxs().list_documents()]
    for i in range(0, len(ids), BATCH):
        tasks.enqueue(project, "pbx", f"{target}/tasks/v1/dns-check", {"pbx_ids": ids[i : i + BATCH]})
    return len(ids)

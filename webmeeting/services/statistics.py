"""Anonymous platform statistics: per day and region, meetings, participants, minutes, MCU load.

``statistics/{YYYY-MM-DD}_{region}`` documents hold counters only (what
``domain.reports.contribution`` and a heartbeat's load give): never a name, email, address,
meeting name or key. At 2 months a day's documents are folded into their month
(``{YYYY-MM}_{region}``) so no single meeting's day can be picked out; at 1 year they go.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from webmeeting.adapters import firestore as fs
from webmeeting.domain import reports as rules

RETENTION = timedelta(days=366)  # TTL safety net; the retention engine deletes at 1 year


def _period_fields(granularity: str, start: datetime, region: str) -> dict[str, Any]:
    return {"granularity": granularity, "period_start": start, "region": region, "expire_at": start + RETENTION}


def _day_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, at.day, tzinfo=UTC)


def add_meeting(tx: fs.Transaction, report: Mapping[str, Any], region: str) -> None:
    """Count one finished meeting into its day (the caller's transaction: counted once)."""
    day = _day_start(report["started_at"])
    ref = fs.statistics().document(rules.stats_id(rules.day_of(day), region))
    increments = {k: fs.increment(v) for k, v in rules.contribution(report).items()}
    tx.set(ref, {**_period_fields("day", day, region), **increments}, merge=True)


def record_load(region: str, load: int, at: datetime) -> None:
    """One sample of an MCU's load (the minute sweep): peak and average per day and region."""
    day = _day_start(at)
    ref = fs.statistics().document(rules.stats_id(rules.day_of(day), region))
    ref.set(
        {
            **_period_fields("day", day, region),
            "mcu_load_peak": fs.maximum(load),
            "mcu_load_sum": fs.increment(load),
            "mcu_load_samples": fs.increment(1),
        },
        merge=True,
    )


COUNTERS = (*rules.STAT_FIELDS, "mcu_load_sum", "mcu_load_samples")


def anonymize_due(before: datetime, batch: int = 100) -> int:
    """Fold every day document older than ``before`` into its month; each fold is one
    transaction (the month gains exactly what the day loses). Returns days folded."""
    folded = 0
    while True:
        query = fs.query(fs.statistics(), ("granularity", "==", "day"), ("period_start", "<", before), limit=batch)
        snaps = list(query.stream())
        if not snaps:
            return folded
        for snap in snaps:
            folded += _fold(snap.reference)


def _fold(day_ref: Any) -> int:
    def run(tx: fs.Transaction) -> int:
        snap = day_ref.get(transaction=tx)
        if not snap.exists:
            return 0
        d = fs.data(snap)
        start: datetime = d["period_start"]
        month = datetime(start.year, start.month, 1, tzinfo=UTC)
        month_ref = fs.statistics().document(rules.stats_id(month.strftime("%Y-%m"), d["region"]))
        fields: dict[str, Any] = {**_period_fields("month", month, d["region"])}
        for k in COUNTERS:
            if k in d:
                fields[k] = fs.increment(d[k])
        if "mcu_load_peak" in d:
            fields["mcu_load_peak"] = fs.maximum(d["mcu_load_peak"])
        tx.set(month_ref, fields, merge=True)
        tx.delete(day_ref)
        return 1

    result: int = fs.transactional(run)
    return result


def delete_due(before: datetime, batch: int = 300) -> int:
    """Delete every statistics document whose period started before ``before`` (1 year)."""
    deleted = 0
    while True:
        query = fs.query(fs.statistics(), ("period_start", "<", before)).limit(batch)
        snaps = list(query.stream())
        if not snaps:
            return deleted
        writer = fs.Writer()
        for snap in snaps:
            writer.delete(snap.reference)
        writer.commit()
        deleted += len(snaps)

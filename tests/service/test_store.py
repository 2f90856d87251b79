"""The store seam (``adapters.firestore``) on the emulator: the one transaction helper and its
error translation, the write-apply (deletes included), the lease claim, the query helper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from webmeeting.adapters import firestore as fs
from webmeeting.errors import NotFound, WriteConflict

pytestmark = pytest.mark.service

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LEASE = fs.Lease(busy="sending", duration=timedelta(seconds=60))


def test_creating_an_existing_document_is_a_write_conflict() -> None:
    ref = fs.mails().document("m1")
    fs.create(ref, {"status": "pending"})
    with pytest.raises(WriteConflict):
        fs.create(ref, {"status": "other"})
    assert fs.data(ref.get()) == {"status": "pending"}


def test_a_transaction_applies_every_write_or_none() -> None:
    keep, gone, made = fs.sessions().document("keep"), fs.sessions().document("gone"), fs.sessions().document("made")
    keep.set({"n": 1})
    gone.set({"n": 2})

    def run(tx: fs.Transaction) -> int:
        n = int(fs.data(keep.get(transaction=tx))["n"])
        writer = fs.Writer()
        writer.update(keep, {"n": n + 1})
        writer.delete(gone)
        writer.create(made, {"n": 0})
        writer.apply(tx)
        return n

    assert fs.transactional(run) == 1
    assert fs.data(keep.get()) == {"n": 2} and not gone.get().exists and made.get().exists

    def refused(tx: fs.Transaction) -> None:
        keep.get(transaction=tx)
        tx.update(keep, {"n": 99})
        raise NotFound("changed my mind")

    with pytest.raises(NotFound):  # the project's own errors pass as they are; nothing is written
        fs.transactional(refused)
    assert fs.data(keep.get()) == {"n": 2}

    def duplicate(tx: fs.Transaction) -> None:
        tx.update(keep, {"n": 100})
        tx.create(made, {"n": 1})

    with pytest.raises(WriteConflict):
        fs.transactional(duplicate)
    assert fs.data(keep.get()) == {"n": 2}


def test_a_lease_is_held_once_and_taken_back_when_it_runs_out() -> None:
    ref = fs.mails().document("m1")
    ref.set({"status": "pending", "n": 1})
    claimed = fs.claim(ref, LEASE, NOW)
    assert isinstance(claimed, dict) and claimed["n"] == 1
    assert fs.data(ref.get())["status"] == "sending"
    assert fs.claim(ref, LEASE, NOW + timedelta(seconds=59)) == "sending"  # held
    again = fs.claim(ref, LEASE, NOW + timedelta(seconds=61))  # its worker vanished
    assert isinstance(again, dict) and fs.data(ref.get())["lease_until"] == NOW + timedelta(seconds=121)
    ref.update({"status": "sent"})
    assert fs.claim(ref, LEASE, NOW + timedelta(days=1)) == "sent"
    assert fs.claim(fs.mails().document("none"), LEASE, NOW) == "unknown"


def test_a_nested_lease_and_a_holders_rerun() -> None:
    ref = fs.reports().document("r1")
    ref.set({"push": {"status": "pending"}, "owner": "a"})
    lease = fs.Lease(busy="pushing", duration=timedelta(seconds=60), prefix="push.")
    assert isinstance(fs.claim(ref, lease, NOW), dict)
    assert fs.data(ref.get())["push"] == {"status": "pushing", "lease_until": NOW + timedelta(seconds=60)}
    assert fs.claim(ref, lease, NOW) == "pushing"

    def mine(d: dict[str, Any]) -> bool:
        return d.get("owner") == "a"

    extra = {"attempts": 1}
    assert isinstance(fs.claim(ref, lease, NOW, mine=mine, extra=lambda d: extra), dict)
    assert fs.data(ref.get())["attempts"] == 1


def test_the_query_helper_filters_orders_limits_and_counts() -> None:
    for i in range(5):
        fs.reports().document(f"r{i}").set({"pbx_id": "p" if i % 2 == 0 else "q", "created_at": NOW + timedelta(minutes=i)})
    q = fs.query(fs.reports(), ("pbx_id", "==", "p"))
    assert fs.count(q) == 3
    newest = fs.query(fs.reports(), order_by="created_at", descending=True, limit=2)
    assert [s.id for s in newest.stream()] == ["r4", "r3"]
    assert [s.id for s in fs.query(fs.reports(), ("created_at", "<", NOW + timedelta(minutes=2))).stream()] == ["r0", "r1"]

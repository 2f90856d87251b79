"""The attendance arithmetic over event tables: duplicates, reordering, missing "left" events,
reconnects, an MCU that died, overlapping connections of the same person."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webmeeting.domain.attendance import Event, Interval, compute, merge

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def table(rows: list[tuple[str, str, str, str, float]]) -> list[Event]:
    """(event id, type, participant, mcu, seconds from T0)."""
    return [Event(eid, kind, pid, mcu, at(s), name=f"name-{pid}") for eid, kind, pid, mcu, s in rows]


def person(result, pid):  # type: ignore[no-untyped-def]
    return next(p for p in result.people if p.participant_id == pid)


BASIC = [
    ("e1", "joined", "alice", "eu", 0),
    ("e2", "joined", "bob", "eu", 10),
    ("e3", "left", "bob", "eu", 70),
    ("e4", "left", "alice", "eu", 100),
]


def test_plain_meeting() -> None:
    result = compute(table(BASIC))
    assert person(result, "alice").connected_seconds == 100
    assert person(result, "bob").connected_seconds == 60
    assert [p.reconnects for p in result.people] == [0, 0]
    assert (result.started_at, result.ended_at) == (at(0), at(100))
    assert [p.participant_id for p in result.people] == ["alice", "bob"]  # in order of arrival


def test_duplicates_change_nothing() -> None:
    events = table(BASIC)
    doubled = events + events + [events[1], events[3]]
    assert compute(doubled) == compute(events)


@pytest.mark.parametrize("seed", range(20))
def test_arrival_order_does_not_matter(seed: int) -> None:
    rows = [
        ("a1", "joined", "alice", "eu", 0),
        ("a2", "left", "alice", "eu", 30),
        ("a3", "reconnected", "alice", "eu", 35),
        ("a4", "left", "alice", "eu", 90),
        ("b1", "joined", "bob", "eu", 5),
        ("b2", "left", "bob", "eu", 95),
    ]
    events = table(rows)
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    assert compute(shuffled) == compute(events)
    assert person(compute(shuffled), "alice").connected_seconds == 85


def test_a_drop_and_rejoin_is_one_reconnect() -> None:
    rows = [
        ("a1", "joined", "alice", "eu", 0),
        ("a2", "left", "alice", "eu", 30),
        ("a3", "reconnected", "alice", "eu", 35),
        ("a4", "left", "alice", "eu", 50),
        ("a5", "reconnected", "alice", "eu", 60),
        ("a6", "left", "alice", "eu", 100),
    ]
    alice = person(compute(table(rows)), "alice")
    assert alice.reconnects == 2
    assert alice.connected_seconds == 30 + 15 + 40
    assert alice.connected == [Interval(at(0), at(30)), Interval(at(35), at(50)), Interval(at(60), at(100))]


def test_a_missing_left_is_closed_by_the_next_join_and_counts_as_a_reconnect() -> None:
    rows = [
        ("a1", "joined", "alice", "eu", 0),
        ("a3", "reconnected", "alice", "eu", 40),  # the left in between was lost
        ("a4", "left", "alice", "eu", 100),
    ]
    alice = person(compute(table(rows)), "alice")
    assert alice.reconnects == 1
    assert alice.connected_seconds == 100


def test_a_missing_final_left_ends_at_the_session_end() -> None:
    rows = [("a1", "joined", "alice", "eu", 0), ("b1", "joined", "bob", "eu", 0), ("b2", "left", "bob", "eu", 80)]
    result = compute(table(rows), end=at(80))
    assert person(result, "alice").connected_seconds == 80
    # without an end, a connection nobody closed counts nothing rather than forever
    assert person(compute(table(rows)), "alice").connected_seconds == 0


def test_an_mcu_that_died_ends_its_connections_at_its_last_heartbeat() -> None:
    rows = [
        ("a1", "joined", "alice", "us", 0),
        ("b1", "joined", "bob", "us", 0),
        # us died at ~60 (last heartbeat 58); both came back through eu
        ("a2", "reconnected", "alice", "eu", 63),
        ("b2", "reconnected", "bob", "eu", 64),
        ("a3", "left", "alice", "eu", 100),
        ("b3", "left", "bob", "eu", 100),
    ]
    result = compute(table(rows), cutoffs={"us": at(58)}, end=at(100))
    alice, bob = person(result, "alice"), person(result, "bob")
    assert alice.connected_seconds == 58 + 37 and alice.reconnects == 1
    assert bob.connected_seconds == 58 + 36 and bob.reconnects == 1
    assert result.ended_at == at(100)


def test_a_crashed_mcu_cannot_keep_anyone_connected_forever() -> None:
    rows = [("a1", "joined", "alice", "us", 0)]
    result = compute(table(rows), cutoffs={"us": at(20)}, end=at(10_000))
    assert person(result, "alice").connected_seconds == 20


def test_overlapping_connections_of_the_same_person_count_once() -> None:
    rows = [
        ("a1", "joined", "alice", "eu", 0),
        ("a2", "reconnected", "alice", "us", 50),  # back through another MCU before eu said goodbye
        ("a3", "left", "alice", "eu", 60),
        ("a4", "left", "alice", "us", 100),
    ]
    alice = person(compute(table(rows)), "alice")
    assert alice.connected_seconds == 100
    assert alice.connected == [Interval(at(0), at(100))]
    assert alice.reconnects == 0  # never disconnected


def test_a_left_without_a_join_counts_nobody() -> None:
    result = compute(table([("x1", "left", "ghost", "eu", 5)]))
    assert result.people == [] and result.started_at is None


def test_names_and_roles() -> None:
    events = [
        Event("o1", "joined", "org", "eu", at(0), name="Org Anizer", role="organizer"),
        Event("o2", "left", "org", "eu", at(10)),
        Event("o3", "reconnected", "org", "eu", at(12), name="Org A.", role="organizer"),
        Event("o4", "left", "org", "eu", at(20)),
    ]
    org = person(compute(events), "org")
    assert (org.name, org.role, org.reconnects, org.connected_seconds) == ("Org A.", "organizer", 1, 18)


def test_merge() -> None:
    ivs = [Interval(at(5), at(10)), Interval(at(0), at(3)), Interval(at(3), at(4)), Interval(at(8), at(12))]
    assert merge(ivs) == [Interval(at(0), at(4)), Interval(at(5), at(12))]


segments = st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 200)), min_size=1, max_size=8)


@settings(max_examples=200, deadline=None)
@given(segments, st.randoms(use_true_random=False), st.integers(0, 3))
def test_connected_time_is_the_union_whatever_the_order_and_repeats(segs, rnd, repeats) -> None:  # type: ignore[no-untyped-def]
    """A person's connected time equals the length of the union of their connections, and the
    reconnects the number of separate stretches minus one, for any arrival order and duplicates."""
    events = []
    for n, (start, length) in enumerate(segs):
        mcu = f"m{n}"  # each connection through its own MCU: overlaps are possible
        events.append(Event(f"o{n}", "joined", "p", mcu, at(start)))
        events.append(Event(f"c{n}", "left", "p", mcu, at(start + length)))
    arrived = events + [rnd.choice(events) for _ in range(repeats)]
    rnd.shuffle(arrived)
    expected = merge(Interval(at(s), at(s + ln)) for s, ln in segs)
    p = person(compute(arrived), "p")
    assert p.connected == expected
    assert p.connected_seconds == sum(iv.seconds for iv in expected)
    assert p.reconnects == len(expected) - 1

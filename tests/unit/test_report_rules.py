"""Report building, redaction for admins, sanitizing and the statistics' contribution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from webmeeting.chart import timeline_png
from webmeeting.domain import reports as rules
from webmeeting.domain.attendance import Event, compute

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def sample_attendance():  # type: ignore[no-untyped-def]
    return compute(
        [
            Event("1", "joined", "org", "eu", at(0), "Olga Organa", "organizer"),
            Event("2", "joined", "p1", "eu", at(5), "Bob Builder", "participant"),
            Event("3", "left", "p1", "eu", at(30)),
            Event("4", "reconnected", "p1", "eu", at(33), "Bob Builder", "participant"),
            Event("5", "left", "p1", "eu", at(60)),
            Event("6", "left", "org", "eu", at(61)),
        ]
    )


def build() -> dict[str, Any]:
    return rules.build(
        sample_attendance(),
        pbx_meeting_id="m-1",
        meeting_name="Quarterly review",
        organizer_name="Olga Organa",
        organizer_email="olga@example.com",
        invitees=[rules.Invitee("bob  BUILDER", "bob@example.org"), rules.Invitee("Carol", "carol@example.org")],
    )


def test_build_report() -> None:
    built = build()
    report = built["report"]
    assert report["meeting_name"] == "Quarterly review"
    assert (report["started_at"], report["ended_at"]) == (at(0), at(61))
    assert report["participants"] == [
        {
            "name": "Olga Organa",
            "email": "olga@example.com",
            "role": "organizer",
            "connected_seconds": 61,
            "reconnects": 0,
            "removed": False,
        },
        {
            "name": "Bob Builder",
            "email": "bob@example.org",
            "role": "participant",
            "connected_seconds": 52,
            "reconnects": 1,
            "removed": False,
        },
    ]
    assert report["removals"] == 0
    assert built["timeline"] == [{"i": 0, "s": 0.0, "e": 61.0}, {"i": 1, "s": 5.0, "e": 30.0}, {"i": 1, "s": 33.0, "e": 60.0}]


def test_removals_are_counted() -> None:
    events = [
        Event("1", "joined", "org", "eu", at(0), "Olga Organa", "organizer"),
        Event("2", "joined", "p1", "eu", at(5), "Mallory", "participant"),
        Event("3", "left", "p1", "eu", at(20), reason="removed"),
        Event("4", "joined", "p2", "eu", at(6), "Bob", "participant"),
        Event("5", "left", "p2", "eu", at(30), reason="left"),
        Event("6", "left", "org", "eu", at(40), reason="left"),
    ]
    report = rules.build(
        compute(events), pbx_meeting_id="m-1", meeting_name="m", organizer_name="Olga", organizer_email=None, invitees=[]
    )["report"]
    assert [p["removed"] for p in report["participants"]] == [False, True, False] and report["removals"] == 1


def test_redaction_for_admins() -> None:
    assert rules.redact_name("Alice Liddell") == "A**** L******"
    assert rules.redact_email("alice@example.com") == "a****@e******.com"
    assert rules.redact_email("x@localhost") == "x@l********"
    assert rules.redact_name(None) is None
    shown = rules.redacted(build()["report"])
    assert [p["name"] for p in shown["participants"]] == ["O*** O*****", "B** B******"]
    assert shown["participants"][1]["email"] == "b**@e******.org"
    assert shown["meeting_name"] == "Q******** r*****"
    assert shown["participants"][1]["connected_seconds"] == 52


def test_sanitize_removes_every_personal_string() -> None:
    report = build()["report"]
    clean = rules.sanitize(report)
    text = repr(clean)
    for s in ("Olga", "Organa", "Bob", "Builder", "olga@", "bob@", "Quarterly"):
        assert s not in text
    assert [p["name"] for p in clean["participants"]] == ["Participant 1", "Participant 2"]
    assert [(p["connected_seconds"], p["reconnects"], p["role"]) for p in clean["participants"]] == [
        (61, 0, "organizer"),
        (52, 1, "participant"),
    ]
    assert rules.sanitize(clean) == clean  # the yearly pass finds nothing more


def test_contribution() -> None:
    assert rules.contribution(build()["report"]) == {
        "meetings": 1,
        "participants": 2,
        "connected_minutes": round(113 / 60, 2),
        "meeting_minutes": round(61 / 60, 2),
        "reconnects": 1,
    }


def test_timeline_chart_is_a_png() -> None:
    png = timeline_png(["Olga Organa", "Bob Builder"], build()["timeline"], 61)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 500


# --- the property: no statistic ever holds a personal string -------------------------------------

personal = st.text(min_size=1, max_size=24)
ips = st.ip_addresses().map(str)


@settings(max_examples=300, deadline=None)
@given(
    names=st.lists(personal, min_size=1, max_size=5),
    emails=st.lists(st.emails(), min_size=1, max_size=5),
    addresses=st.lists(ips, min_size=1, max_size=5),
    meeting_name=personal,
    other=st.tuples(personal, st.emails(), personal),
    durations=st.lists(st.integers(1, 5000), min_size=1, max_size=5),
)
def test_no_statistic_contains_personal_data(names, emails, addresses, meeting_name, other, durations) -> None:  # type: ignore[no-untyped-def]
    events = []
    for n, name in enumerate(names):
        d = durations[n % len(durations)]
        events.append(Event(f"j{n}", "joined", f"p{n}", "eu", at(n), name, "participant"))
        events.append(Event(f"l{n}", "left", f"p{n}", "eu", at(n + d)))
    att = compute(events)
    invitees = [rules.Invitee(name, emails[n % len(emails)]) for n, name in enumerate(names)]

    def report_with(meeting: str, people: list[rules.Invitee], org_email: str) -> dict[str, Any]:
        return rules.build(
            att,
            pbx_meeting_id=None,
            meeting_name=meeting,
            organizer_name=people[0].name,
            organizer_email=org_email,
            invitees=people,
        )["report"]

    stats = rules.contribution(report_with(meeting_name, invitees, emails[0]))
    doc = {"id": rules.stats_id(rules.day_of(att.started_at), "eu-central"), **stats}
    values = [str(v) for v in doc.values()]
    numbers = [v for v in values if v.replace(".", "", 1).isdigit()]
    for secret in [*names, *emails, *addresses, meeting_name]:
        if any(secret in n for n in [*numbers, doc["id"]]):
            continue  # "1" or "eu" is in a number or the region by coincidence, not by leak
        assert not any(secret in v for v in values), secret
    # and the statistic is a function of the numbers alone: other people, same times, same numbers
    others = [rules.Invitee(other[0], other[1]) for _ in names]
    assert rules.contribution(report_with(other[2], others, other[1])) == stats

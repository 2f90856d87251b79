from datetime import UTC, datetime

from webmeeting.domain.invitations import CANCEL, INVITE, UPDATE, plan_mails

T1 = datetime(2026, 12, 1, 9, tzinfo=UTC)
T2 = datetime(2026, 12, 1, 10, tzinfo=UTC)


def m(people: list[str], start: datetime = T1, duration: int = 60, send: bool = True) -> dict:  # type: ignore[type-arg]
    return {
        "scheduled_start": start,
        "duration_minutes": duration,
        "send_invitations": send,
        "participants": [{"name": p.title(), "email": f"{p}@example.org"} for p in people],
    }


def kinds(mails: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return sorted((x.kind, x.email) for x in mails)


def test_creation_invites_everyone_once() -> None:
    assert kinds(plan_mails(None, m(["ada", "grace"]))) == [(INVITE, "ada@example.org"), (INVITE, "grace@example.org")]
    assert plan_mails(None, m(["ada"], send=False)) == []


def test_an_unchanged_update_sends_nothing() -> None:
    assert plan_mails(m(["ada"]), m(["ada"])) == []


def test_time_change_updates_and_people_changes_invite_or_cancel() -> None:
    mails = plan_mails(m(["ada", "grace"]), m(["ada", "alan"], start=T2))
    assert kinds(mails) == [(CANCEL, "grace@example.org"), (INVITE, "alan@example.org"), (UPDATE, "ada@example.org")]


def test_deletion_cancels_everyone_invited() -> None:
    assert kinds(plan_mails(m(["ada", "grace"]), None)) == [(CANCEL, "ada@example.org"), (CANCEL, "grace@example.org")]
    assert plan_mails(m(["ada"], send=False), None) == []


def test_emails_compare_case_insensitively() -> None:
    old = m(["ada"])
    new = {**m([]), "participants": [{"name": "Ada", "email": "ADA@example.org"}]}
    assert plan_mails(old, new) == []


def test_turning_invitations_off_cancels_and_on_invites() -> None:
    assert kinds(plan_mails(m(["ada"]), m(["ada"], send=False))) == [(CANCEL, "ada@example.org")]
    assert kinds(plan_mails(m(["ada"], send=False), m(["ada"]))) == [(INVITE, "ada@example.org")]

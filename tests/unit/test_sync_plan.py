"""The pure sync planner: what a sync must write, and nothing more."""

from webmeeting.domain.api import Extension
from webmeeting.domain.sync import MANIFEST_SHARDS, ManifestEntry, plan_sync


def e(number: str, **kw: str | None) -> Extension:
    data: dict[str, str | None] = {"number": number, "first_name": "A", "last_name": "B", "email": f"{number}@x.org"}
    data.update(kw)
    return Extension(**data)  # type: ignore[arg-type]


def key(n: str) -> str:
    return f"key-{n}"


def test_first_sync_upserts_all_and_creates_quick_meetings_for_enabled_only() -> None:
    plan = plan_sync([e("1"), e("2", email=None)], {}, key)
    assert [s.ext.number for s in plan.upserts] == ["1", "2"]
    assert [s.ext.number for s in plan.new_quick_meetings] == ["1"]
    assert plan.manifest["1"].quick_key == "key-1" and plan.manifest["2"].quick_key is None
    assert plan.manifest["2"].reason == "missing_email"


def test_unchanged_resync_plans_nothing() -> None:
    exts = [e(str(i), vanity_name=f"v{i}") for i in range(100)]
    first = plan_sync(exts, {}, key)
    again = plan_sync(exts, first.manifest, key)
    assert not again.changed and again.changed_shards(first.manifest) == set()
    assert [s.entry for s in again.results] == [first.manifest[str(i)] for i in range(100)]


def test_one_percent_change_touches_one_percent() -> None:
    exts = [e(str(i)) for i in range(1000)]
    old = plan_sync(exts, {}, key).manifest
    exts[10] = e("10", last_name="Changed")
    plan = plan_sync(exts, old, key)
    assert [s.ext.number for s in plan.upserts] == ["10"] and not plan.new_quick_meetings
    assert len(plan.changed_shards(old)) == 1 <= MANIFEST_SHARDS


def test_removed_extensions_are_deleted() -> None:
    old = plan_sync([e("1"), e("2")], {}, key).manifest
    plan = plan_sync([e("2")], old, key)
    assert plan.deletions == ["1"] and not plan.upserts


def test_name_rules_need_first_or_last_name() -> None:
    plan = plan_sync([e("1", first_name=None, last_name=" "), e("2", first_name=None), e("3", last_name=None)], {}, key)
    assert [plan.manifest[n].reason for n in "123"] == ["missing_name", None, None]


def test_email_rules() -> None:
    plan = plan_sync([e("1", email=""), e("2", email="a@b"), e("3", email="a@b.c")], {}, key)
    assert [plan.manifest[n].reason for n in "123"] == ["missing_email", "invalid_email", None]


def test_vanity_clash_disables_the_later_one_case_insensitively() -> None:
    plan = plan_sync([e("1", vanity_name="Ada"), e("2", vanity_name="ada ")], {}, key)
    assert plan.manifest["1"].enabled and plan.manifest["2"].reason == "vanity_taken"


def test_existing_vanity_holder_wins_over_list_order() -> None:
    old = plan_sync([e("5", vanity_name="ada")], {}, key).manifest
    plan = plan_sync([e("1", vanity_name="ADA"), e("5", vanity_name="ada")], old, key)
    assert plan.manifest["5"].enabled and plan.manifest["1"].reason == "vanity_taken"


def test_disabled_extensions_do_not_hold_a_vanity() -> None:
    plan = plan_sync([e("1", vanity_name="ada", email=None), e("2", vanity_name="ada")], {}, key)
    assert plan.manifest["2"].enabled


def test_invalid_vanity_is_disabled() -> None:
    assert plan_sync([e("1", vanity_name="a/b")], {}, key).manifest["1"].reason == "invalid_vanity"


def test_quick_key_is_assigned_once_when_first_enabled_and_kept() -> None:
    old = plan_sync([e("1", email=None)], {}, key).manifest
    enabled = plan_sync([e("1")], old, lambda n: "second")
    assert enabled.manifest["1"].quick_key == "second"
    disabled_again = plan_sync([e("1", email=None)], enabled.manifest, lambda n: "third")
    assert disabled_again.manifest["1"].quick_key == "second" and not disabled_again.new_quick_meetings


def test_manifest_entries_round_trip() -> None:
    entry = ManifestEntry("abc", False, "vanity_taken", None, "k")
    assert ManifestEntry.decode(entry.encode()) == entry

from datetime import UTC, datetime, timedelta
from pathlib import Path

from webmeeting import crypto
from webmeeting.clock import FixedClock, clock_from_env
from webmeeting.domain.licenses import License, license_problem

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def test_time_offset_shifts_now_but_not_wall(tmp_path: Path) -> None:
    clock = clock_from_env({"WEBMEETING_TIME_OFFSET_S": str(10 * 86400)})
    assert clock.now() - clock.wall() > timedelta(days=9, hours=23)


def test_clock_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    f = tmp_path / "offset"
    f.write_text("0")
    clock = clock_from_env({"WEBMEETING_CLOCK_FILE": str(f)})
    assert abs((clock.now() - clock.wall()).total_seconds()) < 1
    f.write_text("3600")
    import os

    os.utime(f, (1, 1))  # a different mtime even within the filesystem's resolution
    assert 3599 < (clock.now() - clock.wall()).total_seconds() < 3601


def test_fixed_clock_advances() -> None:
    c = FixedClock(NOW)
    c.advance(60)
    assert c.now() == NOW + timedelta(minutes=1)


def test_license_problems_at_the_expiry_boundary() -> None:
    lic = License("WM-A-B", "pro", NOW, 10, True)
    assert license_problem(lic, NOW - timedelta(seconds=1)) is None
    assert license_problem(lic, NOW) == "license expired"
    assert license_problem(None, NOW) == "license unknown"
    assert license_problem(License("WM-A-B", "pro", NOW + timedelta(days=1), 10, True, revoked=True), NOW) == "license revoked"


def test_secrets_round_trip_and_are_bound_to_the_pbx() -> None:
    key = b"k" * 32
    blob = crypto.encrypt_secret(key, "pbx1", "s3cret")
    assert "s3cret" not in blob and crypto.decrypt_secret(key, "pbx1", blob) == "s3cret"
    try:
        crypto.decrypt_secret(key, "pbx2", blob)
    except Exception as exc:  # noqa: BLE001
        assert type(exc).__name__ == "InvalidTag"
    else:
        raise AssertionError("decrypting under another PBX id must fail")


def test_meeting_and_derived_keys_carry_128_bits() -> None:
    import base64

    for k in (crypto.new_meeting_key(), crypto.derived_key(b"k" * 32, "quick:p:1:0")):
        assert len(base64.urlsafe_b64decode(k + "==")) == 16
    assert crypto.derived_key(b"k" * 32, "a") != crypto.derived_key(b"k" * 32, "b")

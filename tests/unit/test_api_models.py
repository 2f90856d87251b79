import pytest
from pydantic import ValidationError

from webmeeting.domain.api import ActivateRequest, MeetingRequest

ACT = {
    "license_key": "WM-ABCD-1234-EFGH",
    "pbx_fqdn": "pbx.example.com",
    "webmeeting_fqdn": "meet.example.com",
    "pbx_version": "20.0.1",
}


def test_fqdns_are_lowercased() -> None:
    assert (
        ActivateRequest.model_validate_json(
            '{"license_key":"WM-ABCD-1234-EFGH","pbx_fqdn":"PBX.Example.COM","webmeeting_fqdn":"m.example.com","pbx_version":"1"}'
        ).pbx_fqdn
        == "pbx.example.com"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"pbx_fqdn": "localhost"},
        {"pbx_fqdn": "-a.example.com"},
        {"pbx_fqdn": "a_b.example.com"},
        {"license_key": "nope"},
        {"pbx_version": 20},
        {"extra": "x"},
    ],
)
def test_activation_rejects(change: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        ActivateRequest.model_validate({**ACT, **change}, strict=True)


def test_meeting_start_must_be_utc() -> None:
    base = {"organizer": "101", "name": "x", "duration_minutes": 5}
    assert MeetingRequest.model_validate_json(
        '{"organizer":"101","name":"x","duration_minutes":5,"scheduled_start":"2026-12-01T09:00:00Z"}'
    )
    with pytest.raises(ValidationError):
        MeetingRequest.model_validate({**base, "scheduled_start": "2026-12-01T09:00:00+01:00"})


def test_control_characters_are_refused_in_names() -> None:
    with pytest.raises(ValidationError):
        MeetingRequest.model_validate_json(
            '{"organizer":"1","name":"a\\u0000b","duration_minutes":5,"scheduled_start":"2026-12-01T09:00:00Z"}'
        )

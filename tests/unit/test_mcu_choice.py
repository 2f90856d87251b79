"""Closest-MCU choice over a table of cities and MCUs."""

import pytest

from webmeeting.domain.mcu import Location, Mcu, NoMcuAvailable, choose_mcu, distance_km, rank_mcus

CITIES = {
    "Frankfurt": Location(50.1109, 8.6821),
    "Paris": Location(48.8566, 2.3522),
    "London": Location(51.5074, -0.1278),
    "Chicago": Location(41.8781, -87.6298),
    "Iowa": Location(41.2619, -95.8608),
    "Sydney": Location(-33.8688, 151.2093),
    "Singapore": Location(1.3521, 103.8198),
    "Sao Paulo": Location(-23.5505, -46.6333),
    "Johannesburg": Location(-26.2041, 28.0473),
}


def mcu(mcu_id: str, city: str, status: str = "active", load: int = 0, capacity: int = 100) -> Mcu:
    where = CITIES[city]
    return Mcu(mcu_id, city.lower(), f"wss://{mcu_id}/ws", status, capacity, load, where.latitude, where.longitude)


FLEET = [mcu("fra", "Frankfurt"), mcu("lon", "London"), mcu("iowa", "Iowa"), mcu("sgp", "Singapore"), mcu("sao", "Sao Paulo")]


def test_distances_are_great_circle() -> None:
    assert distance_km(CITIES["Frankfurt"], CITIES["Frankfurt"]) == 0
    assert 440 < distance_km(CITIES["Paris"], CITIES["Frankfurt"]) < 490  # ~ 479 km
    assert 16_000 < distance_km(CITIES["Frankfurt"], CITIES["Sydney"]) < 16_700
    assert distance_km(CITIES["Sydney"], CITIES["Iowa"]) == pytest.approx(distance_km(CITIES["Iowa"], CITIES["Sydney"]))


@pytest.mark.parametrize(
    ("pbx", "expected"),
    [
        ("Paris", "lon"),  # London 344 km, Frankfurt 479 km
        ("Frankfurt", "fra"),
        ("Chicago", "iowa"),
        ("Sydney", "sgp"),
        ("Johannesburg", None),  # computed below: the table must not guess
        ("Sao Paulo", "sao"),
    ],
)
def test_nearest(pbx: str, expected: str | None) -> None:
    if pbx == "Johannesburg":  # computed rather than remembered
        expected = min(FLEET, key=lambda m: distance_km(CITIES[pbx], m.location)).id
    assert choose_mcu(CITIES[pbx], FLEET).id == expected


def test_deprecated_unavailable_and_full_mcus_are_skipped_for_the_next_closest() -> None:
    fleet = [
        mcu("fra", "Frankfurt", status="deprecated"),
        mcu("lon", "London", status="unavailable"),
        mcu("iowa", "Iowa", load=100),
        mcu("sgp", "Singapore"),
    ]
    assert choose_mcu(CITIES["Paris"], fleet).id == "sgp"
    assert [m.id for m in rank_mcus(CITIES["Paris"], fleet)] == ["sgp"]


def test_ties_go_to_the_less_loaded_then_the_id() -> None:
    twins = [mcu("b", "Frankfurt", load=50), mcu("a", "Frankfurt", load=50), mcu("c", "Frankfurt", load=10)]
    assert choose_mcu(CITIES["Paris"], twins).id == "c"
    assert choose_mcu(CITIES["Paris"], twins[:2]).id == "a"


def test_load_is_relative_to_capacity() -> None:
    twins = [mcu("small", "Frankfurt", load=5, capacity=10), mcu("big", "Frankfurt", load=50, capacity=200)]
    assert choose_mcu(CITIES["Paris"], twins).id == "big"


def test_a_running_meeting_stays_while_its_next_persons_streams_fit() -> None:
    from webmeeting.domain.mcu import meeting_streams, streams_for_join
    from webmeeting.services.join import pick_mcu

    assert streams_for_join(0) == 0 and streams_for_join(1) == 4 and streams_for_join(9) == 36
    # a meeting of 9 on a nearly full MCU: the tenth person adds 36 streams (9 x audio and video, both ways)
    fleet = [mcu("fra", "Frankfurt", load=160, capacity=200), mcu("lon", "London", load=0, capacity=200)]
    assert pick_mcu(fleet, "fra", "fra", CITIES["Paris"], present=9).id == "fra"  # 196 <= 200
    fleet[0] = mcu("fra", "Frankfurt", load=170, capacity=200)
    assert pick_mcu(fleet, "fra", "fra", CITIES["Paris"], present=9).id == "lon"  # 206 > 200: it moves, whole
    assert meeting_streams(10) == 180  # what it takes to "lon"
    busy = mcu("lon", "London", load=100, capacity=200)
    iowa = mcu("iowa", "Iowa", load=0, capacity=200)
    assert pick_mcu([fleet[0], busy, iowa], "fra", "fra", CITIES["Paris"], present=9).id == "iowa"  # London: no room for 180
    assert pick_mcu(fleet, "fra", "fra", CITIES["Paris"], present=0).id == "fra"  # an empty session costs nothing yet
    # deprecated meanwhile: it stays (never split) while alive and fitting
    fleet[0] = mcu("fra", "Frankfurt", status="deprecated", load=10, capacity=200)
    assert pick_mcu(fleet, "fra", "fra", CITIES["Paris"], present=3).id == "fra"


@pytest.mark.parametrize(
    ("fleet", "reason"),
    [
        ([], "no MCU is registered"),
        ([mcu("fra", "Frankfurt", status="deprecated")], "deprecated"),
        ([mcu("fra", "Frankfurt", load=100), mcu("lon", "London", status="unavailable")], "full, unavailable"),
    ],
)
def test_none_available_is_a_clear_error(fleet: list[Mcu], reason: str) -> None:
    with pytest.raises(NoMcuAvailable, match=reason):
        choose_mcu(CITIES["Paris"], fleet)

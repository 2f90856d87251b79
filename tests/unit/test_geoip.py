"""The GeoIP adapter against a database built by the test, and the packaged real one."""

from pathlib import Path

from tests.helpers import GEO, build_geo_database
from webmeeting.adapters import geoip
from webmeeting.domain.mcu import Location

DEFAULT = Location(50.11, 8.68)


def test_exact_entries_and_fallbacks(tmp_path: Path) -> None:
    db = str(build_geo_database(tmp_path / "city.mmdb"))
    paris = geoip.locate("127.0.0.2", db, DEFAULT)
    assert paris.source == "geoip" and paris.country == "FR"
    assert (paris.location.latitude, paris.location.longitude) == GEO["127.0.0.2"][1:3]
    assert geoip.locate("127.0.0.1", db, DEFAULT) == geoip.Located(DEFAULT, "default:private")
    assert geoip.locate("8.8.4.4", db, DEFAULT) == geoip.Located(DEFAULT, "default:not_found")
    assert geoip.locate("not an ip", db, DEFAULT).source == "default:not_found"


def test_the_packaged_geolite2_database_is_found_and_real() -> None:
    path = geoip.packaged_database()
    assert path is not None and path.stat().st_size > 10_000_000
    google_dns = geoip.locate("8.8.8.8", None, DEFAULT)
    assert google_dns.source == "geoip" and google_dns.country == "US"
    assert geoip.locate("10.1.2.3", None, DEFAULT).source == "default:private"

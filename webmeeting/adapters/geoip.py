"""GeoIP adapter: a MaxMind-format City database, read with geoip2.

The database path is a setting (``WEBMEETING_GEOIP_DB``; production: a GeoLite2/GeoIP2 City
file the operator keeps fresh). Without it, the GeoLite2 City file of the PyPI package
``maxminddb-geolite2`` is used when installed (the local default).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path

import geoip2.database
import geoip2.errors

from webmeeting.domain.mcu import Location

_readers: dict[str, geoip2.database.Reader] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Located:
    """Where an IP is, or the default location and why."""

    location: Location
    source: str  # geoip | default:private | default:not_found | default:no_coordinates | default:no_database
    country: str | None = None


def packaged_database() -> Path | None:
    spec = importlib.util.find_spec("_maxminddb_geolite2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "GeoLite2-City.mmdb"
    return path if path.exists() else None


def _reader(path: str) -> geoip2.database.Reader:
    with _lock:
        if path not in _readers:
            _readers[path] = geoip2.database.Reader(path)
        return _readers[path]


def locate(ip: str, database: str | None, default: Location) -> Located:
    """Look ``ip`` up; fall back to ``default`` (and say why) when it cannot be located."""
    path = database or (str(p) if (p := packaged_database()) else None)
    if not path:
        return Located(default, "default:no_database")
    try:
        record = _reader(path).city(ip)
    except (geoip2.errors.AddressNotFoundError, ValueError):
        private = _is_private(ip)
        return Located(default, "default:private" if private else "default:not_found")
    lat, lon = record.location.latitude, record.location.longitude
    if lat is None or lon is None:
        return Located(default, "default:no_coordinates", record.country.iso_code)
    return Located(Location(lat, lon), "geoip", record.country.iso_code)


def _is_private(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return addr.is_private or addr.is_loopback or addr.is_link_local

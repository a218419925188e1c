"""Where an address is: a MaxMind .mmdb (GeoLite2/GeoIP2 City layout) when configured,
otherwise coordinates from trusted edge headers, otherwise unknown.

A configured database that is missing or corrupt stops start-up (ConfigError naming
the file): running without it would silently switch impossible travel off.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from admitd.errors import ConfigError
from admitd.risk.model import GeoPoint

__all__ = ["GEO_HEADERS", "GeoLocator", "geo_from_headers"]

log = logging.getLogger(__name__)

# Set (and overwritten) by the edge proxy from its own geo lookup; read only when
# `risk.trusted_geo_headers` says the edge strips what clients send.
GEO_HEADERS = ("x-geo-latitude", "x-geo-longitude", "x-geo-country")


class _Reader(Protocol):
    def get(self, ip_address: str) -> object: ...

    def close(self) -> None: ...


class GeoLocator:
    def __init__(self, mmdb_file: Path | None = None, *, trusted_headers: bool = False) -> None:
        self._reader = _open_mmdb(mmdb_file) if mmdb_file is not None else None
        self._trusted_headers = trusted_headers
        self._file = mmdb_file

    @property
    def has_database(self) -> bool:
        return self._reader is not None

    def locate(self, ip: str, headers: Mapping[str, str] | None = None) -> GeoPoint | None:
        """The database's answer for `ip`, else (no database) the trusted headers, else None."""
        if self._reader is not None:
            return self._lookup(ip)
        if self._trusted_headers and headers is not None:
            return geo_from_headers(headers)
        return None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def _lookup(self, ip: str) -> GeoPoint | None:
        try:
            ipaddress.ip_address(ip)
            record = self._reader.get(ip) if self._reader is not None else None
        except ValueError:
            return None  # unparseable IPs raise ip_reputation instead
        except Exception:  # maxminddb's InvalidDatabaseError on a damaged record
            log.warning("geo lookup failed in %s; location unknown", self._file, exc_info=True)
            return None
        return _point_from_record(record)


def geo_from_headers(headers: Mapping[str, str]) -> GeoPoint | None:
    """None unless both coordinates are present, finite and in range."""
    lat = _coordinate(headers.get(GEO_HEADERS[0]), 90.0)
    lon = _coordinate(headers.get(GEO_HEADERS[1]), 180.0)
    if lat is None or lon is None:
        return None
    country = headers.get(GEO_HEADERS[2], "").strip().upper()
    return GeoPoint(lat, lon, country if len(country) == 2 and country.isalpha() else "")


def _coordinate(text: str | None, limit: float) -> float | None:
    if text is None or len(text) > 32:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and -limit <= value <= limit else None


def _point_from_record(record: object) -> GeoPoint | None:
    if not isinstance(record, Mapping):
        return None
    location = record.get("location")
    if not isinstance(location, Mapping):
        return None
    lat, lon = location.get("latitude"), location.get("longitude")
    if not isinstance(lat, int | float) or not isinstance(lon, int | float):
        return None
    country = record.get("country")
    code = country.get("iso_code", "") if isinstance(country, Mapping) else ""
    return GeoPoint(float(lat), float(lon), code if isinstance(code, str) else "")


def _open_mmdb(path: Path) -> _Reader:
    try:
        import maxminddb
    except ImportError:
        raise ConfigError(
            "risk.mmdb_file needs the maxminddb package",
            file=str(path),
            key="risk.mmdb_file",
            fix="pip install maxminddb",
        ) from None
    try:
        reader: _Reader = maxminddb.open_database(str(path))
        # The header can be intact over a damaged search tree: walk it once now.
        reader.get("192.0.2.1")
    except OSError as exc:
        raise ConfigError(
            f"cannot read MaxMind database: {exc.strerror or exc}",
            file=str(path),
            key="risk.mmdb_file",
        ) from None
    except (ValueError, IndexError, maxminddb.InvalidDatabaseError) as exc:
        raise ConfigError(
            f"not a valid MaxMind database: {exc}",
            file=str(path),
            key="risk.mmdb_file",
            fix="point it at a GeoLite2/GeoIP2 City .mmdb",
        ) from None
    return reader

"""GeoLocator against real .mmdb files, written by the tiny MaxMind DB writer below.

The writer covers what the tests need (IPv4 tree, 24-bit records, maps, strings,
doubles, unsigned ints, arrays) following the MaxMind DB spec 2.0.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import maxminddb
import pytest

from admitd.errors import ConfigError
from admitd.risk.geo import GeoLocator
from admitd.risk.model import GeoPoint

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


def _control(type_: int, size: int) -> bytes:
    extended = type_ > 7
    head = 0 if extended else type_ << 5
    if size < 29:
        out, tail = bytes([head | size]), b""
    elif size < 285:
        out, tail = bytes([head | 29]), bytes([size - 29])
    else:
        out, tail = bytes([head | 30]), (size - 285).to_bytes(2, "big")
    return out + (bytes([type_ - 7]) if extended else b"") + tail


class U16(int):
    """Metadata fields the C reader checks by type (MaxMind DB spec: uint16 / uint64)."""


class U64(int):
    pass


def encode(value: object) -> bytes:
    if isinstance(value, U16 | U64):
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
        return _control(5 if isinstance(value, U16) else 9, len(raw)) + raw
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
        return _control(9 if value >= 2**32 else 6, len(raw)) + raw
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(type(value))


def write_mmdb(path: Path, networks: dict[str, dict[str, object]]) -> Path:
    """An IPv4 City-style database: network -> record (e.g. {"location": {...}})."""
    nodes: list[list[object]] = [[None, None]]  # child: int node | ("data", i) | None
    records = list(networks.values())
    for index, cidr in enumerate(networks):
        net = ipaddress.ip_network(cidr)
        bits = int(net.network_address)
        node = 0
        for depth in range(net.prefixlen):
            bit = (bits >> (31 - depth)) & 1
            if depth == net.prefixlen - 1:
                nodes[node][bit] = ("data", index)
            else:
                child = nodes[node][bit]
                if not isinstance(child, int):
                    nodes.append([None, None])
                    child = nodes[node][bit] = len(nodes) - 1
                node = child
    data, offsets = b"", []
    for record in records:
        offsets.append(len(data))
        data += encode(record)
    count = len(nodes)

    def value(child: object) -> int:
        if isinstance(child, int):
            return child
        if child is None:
            return count
        assert isinstance(child, tuple)
        return count + 16 + offsets[child[1]]

    tree = b"".join(
        value(left).to_bytes(3, "big") + value(right).to_bytes(3, "big") for left, right in nodes
    )
    metadata = {
        "node_count": count,
        "record_size": U16(24),
        "ip_version": U16(4),
        "database_type": "admitd-test-City",
        "languages": ["en"],
        "binary_format_major_version": U16(2),
        "binary_format_minor_version": U16(0),
        "build_epoch": U64(1_700_000_000),
        "description": {"en": "admitd test database"},
    }
    meta = encode(metadata)
    path.write_bytes(tree + b"\x00" * 16 + data + _METADATA_MARKER + meta)
    return path


def city(lat: float, lon: float, country: str) -> dict[str, object]:
    return {"location": {"latitude": lat, "longitude": lon}, "country": {"iso_code": country}}


PARIS = city(48.8566, 2.3522, "FR")
SYDNEY = city(-33.8688, 151.2093, "AU")


@pytest.fixture
def mmdb(tmp_path: Path) -> Path:
    return write_mmdb(tmp_path / "city.mmdb", {"192.0.2.0/24": PARIS, "198.51.100.0/24": SYDNEY})


def test_the_test_writer_produces_a_database_maxminddb_reads(mmdb: Path) -> None:
    with maxminddb.open_database(str(mmdb)) as reader:
        assert reader.get("192.0.2.77") == PARIS
        assert reader.get("203.0.113.1") is None
        assert reader.metadata().database_type == "admitd-test-City"


def test_locates_from_the_database(mmdb: Path) -> None:
    locator = GeoLocator(mmdb)
    assert locator.has_database
    assert locator.locate("192.0.2.1") == GeoPoint(48.8566, 2.3522, "FR")
    assert locator.locate("198.51.100.9") == GeoPoint(-33.8688, 151.2093, "AU")
    locator.close()


@pytest.mark.parametrize(
    "ip",
    ["203.0.113.1", "not-an-ip", "", "2001:db8::1"],
    ids=["unlisted", "garbage", "empty", "v6-in-v4-db"],
)
def test_unknown_or_unparseable_addresses_have_no_location(mmdb: Path, ip: str) -> None:
    assert GeoLocator(mmdb).locate(ip) is None


def test_the_database_wins_over_trusted_headers(mmdb: Path) -> None:
    headers = {"x-geo-latitude": "1", "x-geo-longitude": "2"}
    assert GeoLocator(mmdb, trusted_headers=True).locate("192.0.2.1", headers) == PARIS_POINT


PARIS_POINT = GeoPoint(48.8566, 2.3522, "FR")


def test_without_a_database_headers_are_used_only_when_trusted() -> None:
    headers = {"x-geo-latitude": "-33.87", "x-geo-longitude": "151.21", "x-geo-country": "au"}
    assert GeoLocator(trusted_headers=True).locate("192.0.2.1", headers) == GeoPoint(
        -33.87, 151.21, "AU"
    )
    assert GeoLocator(trusted_headers=False).locate("192.0.2.1", headers) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"x-geo-latitude": "91", "x-geo-longitude": "0"},
        {"x-geo-latitude": "nan", "x-geo-longitude": "0"},
        {"x-geo-latitude": "1"},
        {"x-geo-latitude": "x", "x-geo-longitude": "y"},
        {"x-geo-latitude": "1" * 100, "x-geo-longitude": "1"},
    ],
    ids=["out-of-range", "nan", "half", "garbage", "oversized"],
)
def test_malformed_geo_headers_mean_unknown(headers: dict[str, str]) -> None:
    assert GeoLocator(trusted_headers=True).locate("192.0.2.1", headers) is None


def test_a_missing_database_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mmdb"
    with pytest.raises(ConfigError, match=r"nope\.mmdb") as info:
        GeoLocator(missing)
    assert info.value.key == "risk.mmdb_file"


@pytest.mark.parametrize(
    "damage",
    [
        lambda good: b"",
        lambda good: b"\x00" * 4096,
        lambda good: good[: len(good) // 3],
        lambda good: b"\xff" * 60 + good[60:],
    ],
    ids=["empty", "zeros", "truncated", "garbage-tree"],
)
def test_a_corrupt_database_stops_start_up_naming_the_file(mmdb: Path, damage: object) -> None:
    assert callable(damage)
    mmdb.write_bytes(damage(mmdb.read_bytes()))
    with pytest.raises(ConfigError, match=r"city\.mmdb"):
        GeoLocator(mmdb)

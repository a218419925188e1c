"""ReputationList: blocklist formats, errors that name file and line, reloads, O(log n) lookups."""

from __future__ import annotations

import ipaddress
import logging
import os
import time
from pathlib import Path

import pytest

from admitd.errors import ConfigError
from admitd.risk.reputation import ReputationList

SPAMHAUS_DROP = """; Spamhaus DROP List 2024/05/01 - (c) 2024 The Spamhaus Project
; Last-Modified: Wed, 01 May 2024 12:00:00 GMT
; Expires: Thu, 02 May 2024 00:00:00 GMT
1.10.16.0/20 ; SBL256894
1.19.0.0/16 ; SBL434604
"""
PLAIN = """# FireHOL-style netset
203.0.113.7
198.51.100.0/25   # trailing comment

2001:db8:bad::/48
10.0.0.1/8\r
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def lists(tmp_path: Path) -> ReputationList:
    return ReputationList(
        [write(tmp_path, "drop.txt", SPAMHAUS_DROP), write(tmp_path, "plain.txt", PLAIN)]
    )


@pytest.mark.parametrize(
    ("ip", "listed"),
    [
        ("1.10.16.1", True),
        ("1.10.31.255", True),
        ("1.10.32.0", False),
        ("1.19.200.3", True),
        ("203.0.113.7", True),
        ("203.0.113.8", False),
        ("198.51.100.127", True),
        ("198.51.100.128", False),
        ("10.200.1.1", True),  # host bits ignored: 10.0.0.0/8
        ("2001:db8:bad:1::5", True),
        ("2001:db8:bee::1", False),
        ("::ffff:203.0.113.7", True),  # IPv4-mapped
        ("192.0.2.1", False),
    ],
)
def test_lookups(lists: ReputationList, ip: str, listed: bool) -> None:
    assert lists.contains(ip) is listed


@pytest.mark.parametrize("ip", ["", "not-an-ip", "300.1.1.1", "1.2.3.4/24"])
def test_an_unparseable_address_counts_as_listed(lists: ReputationList, ip: str) -> None:
    assert lists.contains(ip) is True  # fail closed: it cannot be shown clean


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("1.2.3.4\nnot-an-ip\n", 2),
        ("# ok\n\n1.2.3.0/33\n", 3),
        ("1.2.3.4 5.6.7.8\n", 1),
        ("; only comments\n1.2.3.4-1.2.3.9\n", 2),
    ],
    ids=["word", "bad-prefix", "two-on-a-line", "range-syntax"],
)
def test_a_bad_line_stops_start_up_naming_file_and_line(
    tmp_path: Path, text: str, line: int
) -> None:
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(ConfigError) as info:
        ReputationList([path])
    assert info.value.file == str(path)
    assert info.value.line == line
    assert f"bad.txt:{line}" in str(info.value)


def test_a_missing_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.txt"):
        ReputationList([tmp_path / "missing.txt"])


def test_a_binary_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"blob\.txt"):
        ReputationList([path])


def _touch_changed(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_reload_picks_up_changes_without_restart(tmp_path: Path) -> None:
    path = write(tmp_path, "list.txt", "192.0.2.1\n")
    lists = ReputationList([path])
    assert lists.reload_if_changed() is False
    _touch_changed(path, "192.0.2.2\n")
    assert lists.reload_if_changed() is True
    assert (lists.contains("192.0.2.1"), lists.contains("192.0.2.2")) == (False, True)


def test_a_bad_reload_keeps_the_previous_list(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, "list.txt", "192.0.2.1\n")
    lists = ReputationList([path])
    _touch_changed(path, "192.0.2.2\ngarbage\n")
    with caplog.at_level(logging.WARNING):
        assert lists.reload_if_changed() is False
    assert "list.txt:2" in caplog.text
    assert lists.contains("192.0.2.1") is True
    path.unlink()  # a vanished file is also kept
    assert lists.reload_if_changed() is False
    assert lists.contains("192.0.2.1") is True


def test_overlapping_and_adjacent_ranges_merge(tmp_path: Path) -> None:
    text = "10.0.0.0/24\n10.0.1.0/24\n10.0.0.128/25\n10.0.3.0/24\n"
    lists = ReputationList([write(tmp_path, "l.txt", text)])
    assert lists.size == 2
    assert [lists.contains(f"10.0.{n}.1") for n in range(5)] == [True, True, False, True, False]


def test_100k_entries_load_fast_and_look_up_in_microseconds(tmp_path: Path) -> None:
    # Every other /32 from 100.64.0.0: nothing merges, so 100k ranges remain.
    base = int(ipaddress.IPv4Address("100.64.0.0"))
    text = "\n".join(str(ipaddress.IPv4Address(base + 2 * i)) for i in range(100_000))
    started = time.perf_counter()
    lists = ReputationList([write(tmp_path, "big.txt", text)])
    assert time.perf_counter() - started < 5
    assert lists.size == 100_000
    probes = [str(ipaddress.IPv4Address(base + i)) for i in range(0, 20_000, 7)]
    started = time.perf_counter()
    hits = [lists.contains(ip) for ip in probes]
    per_lookup = (time.perf_counter() - started) / len(probes)
    assert hits == [i % 2 == 0 for i in range(0, 20_000, 7)]
    assert per_lookup < 50e-6  # bisect: ~17 comparisons, dominated by parsing the address

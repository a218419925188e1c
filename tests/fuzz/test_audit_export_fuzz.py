"""Fuzz the audit export reader: `admitd audit verify --file` on damaged export files.

Correct means: reading and verifying any file returns a report (or a checkpoint problem)
and never raises; and a file that verifies says nothing the original did not: its entries
are a contiguous run of the original's (an export is a range, so a cut prefix, or a cut
tail beyond the last surviving checkpoint, is undetectable by design), and its checkpoints
are the original's. Anything else that verifies is a missed tamper.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given

from admitd.audit.sources import checkpoints_from_file
from tests.fuzz.audit_exports import (
    ENTRIES,
    KEY,
    ORIGINAL,
    damaged_exports,
    says_only_what_the_original_said,
    verify_file,
)
from tests.fuzz.budget import FUZZ, bounded

pytestmark = pytest.mark.timeout(120)


def test_the_original_export_verifies(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(ORIGINAL) + "\n")
    report, checkpoints_ok = verify_file(path)
    assert checkpoints_ok and report.problem is None and report.entries == ENTRIES


@FUZZ
@given(blob=damaged_exports())
def test_a_damaged_export_is_reported_never_raised_nor_passed(
    tmp_path_factory: pytest.TempPathFactory, blob: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "damaged.jsonl"
    path.write_bytes(blob)
    report, checkpoints_ok = bounded(lambda: verify_file(path), "audit verify --file")
    if checkpoints_ok and report.problem is None:
        assert says_only_what_the_original_said(blob), "a damaged export verified"


def test_a_deeply_nested_line_is_reported_not_raised(tmp_path: Path) -> None:
    """One line of 100,000 nested `[`: json.loads raised RecursionError, which `_lines`
    (audit/sources.py) did not catch: `admitd audit verify --file` exited with a traceback."""
    path = tmp_path / "export.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    report, _ = verify_file(path)
    assert report.problem is not None and report.problem.kind == "corrupted"


def test_an_entry_with_a_lone_surrogate_is_reported_not_raised(tmp_path: Path) -> None:
    """An entry line whose JSON says "\\ud800": canonical_bytes_from_mapping's .encode("utf-8")
    raised UnicodeEncodeError in _record_from_export (audit/sources.py)."""
    doc = json.loads(ORIGINAL[2])
    doc["entry"]["user"] = "\ud800"
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(doc) + "\n")  # ensure_ascii: the file itself is valid UTF-8
    report, _ = verify_file(path)
    assert report.problem is not None and report.problem.kind == "corrupted"


def test_a_checkpoint_with_a_lone_surrogate_is_reported_not_raised(tmp_path: Path) -> None:
    """The same in a checkpoint line (key_id left right, so the signature is checked):
    checkpoint._message re-encoded the fields and raised in verify_checkpoint."""
    doc = json.loads(ORIGINAL[0])
    doc["instance"] = "\ud800"
    path = tmp_path / "export.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    checkpoints = checkpoints_from_file(path, KEY.public_key())
    assert checkpoints.problem is not None


def test_a_checkpoint_signature_in_another_base64_spelling_is_refused(tmp_path: Path) -> None:
    """Found by `make fuzz-long` (atheris_audit_export): the last base64 character of a
    64-byte signature carries 4 unused bits; "...AA==" changed to "...AD==" decodes to the
    same bytes, so the changed export verified. Only the spelling admitd writes is read."""
    doc = json.loads(ORIGINAL[0])
    last = doc["sig"][-3]
    assert doc["sig"].endswith("==") and last in "AQgw"  # 2 bits used, 4 unused
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    doc["sig"] = doc["sig"][:-3] + alphabet[alphabet.index(last) + 3] + "=="
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join([json.dumps(doc, sort_keys=True), *ORIGINAL[1:]]) + "\n")
    checkpoints = checkpoints_from_file(path, KEY.public_key())
    assert checkpoints.problem is not None and "canonical" in str(checkpoints.problem)

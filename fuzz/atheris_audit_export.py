"""atheris: `admitd audit verify --file` on any file: a report, never an exception; and a
file that verifies says only what the original export said (tests/fuzz/audit_exports.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd"]):
    from admitd.audit.sources import checkpoints_from_file, records_from_file
    from admitd.audit.verify import verify_chain

from tests.fuzz.audit_exports import KEY, ORIGINAL, says_only_what_the_original_said

PATH = Path(tempfile.mkdtemp(prefix="admitd-fuzz-audit-")) / "export.jsonl"
SEEDS = [("\n".join(ORIGINAL) + "\n").encode(), ORIGINAL[2].encode()]


def one_input(data: bytes) -> None:
    PATH.write_bytes(data)
    try:
        checkpoints = checkpoints_from_file(PATH, KEY.public_key())
        report = verify_chain(
            records_from_file(PATH),
            opener=None,
            checkpoints=checkpoints.by_seq,
            start=None,
            check_tail=True,
        )
    except Exception as exc:
        if tolerated(exc):
            return
        raise
    if checkpoints.problem is None and report.problem is None:
        assert says_only_what_the_original_said(data), "a damaged export verified"


if __name__ == "__main__":
    main("audit_export", one_input, SEEDS)

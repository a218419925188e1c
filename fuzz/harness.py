"""What every atheris target shares: arguments, a seed corpus, and the known defects.

A target calls `main(name, one_input, seeds)`. Without a corpus directory on the command
line, the corpus and any crash files go to `$ADMITD_FUZZ_DIR/<name>/` (default: the system
temporary directory), seeded with `seeds` on the first run, so the work tree stays clean.
`-max_total_time` and `-timeout=1` are added unless given: a run always ends, and an input
that takes over a second is a hang (libFuzzer reports it as a timeout and stops).

Defects already pinned by `xfail(strict=True)` tests (tests/fuzz/known_defects.py) are
tolerated, so a long run looks past them for new ones; `ADMITD_FUZZ_STRICT=1` turns that off.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `tests.*` helpers (the PKI, the oracle) are imported by path
    sys.path.insert(0, str(ROOT))

from tests.fuzz import known_defects  # noqa: E402

__all__ = ["ROOT", "main", "tolerated"]

_DEFECTS = tuple(
    v for v in vars(known_defects).values() if isinstance(v, known_defects.KnownDefect)
)


def tolerated(exc: BaseException) -> bool:
    """True for a known, already-pinned defect (unless ADMITD_FUZZ_STRICT=1)."""
    if os.environ.get("ADMITD_FUZZ_STRICT") == "1":
        return False
    return any(defect.matches(exc) for defect in _DEFECTS)


def main(name: str, one_input: Callable[[bytes], None], seeds: Iterable[bytes]) -> None:
    argv = list(sys.argv)
    if not any(a.startswith("-max_total_time=") or a.startswith("-runs=") for a in argv[1:]):
        argv.append("-max_total_time=" + os.environ.get("ADMITD_FUZZ_SECONDS", "60"))
    if not any(a.startswith("-timeout=") for a in argv[1:]):
        argv.append("-timeout=1")
    if not any(not a.startswith("-") for a in argv[1:]):
        work = (
            Path(os.environ.get("ADMITD_FUZZ_DIR", Path(tempfile.gettempdir()) / "admitd-fuzz"))
            / name
        )
        corpus = work / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for index, seed in enumerate(seeds):
                (corpus / f"seed-{index}").write_bytes(seed)
        argv += [f"-artifact_prefix={work}/", str(corpus)]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()

"""The full fault matrix (300 req/s, 30 s per fault): writes RELIABILITY.md's table.

    .venv/bin/python -m tests.reliability.run_matrix [--short] [--only NAME ...] [--out FILE]

Everything runs on loopback, each fault on a stack of its own; bounded by the size chosen.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from tests.pki_fixtures import build_test_pki
from tests.reliability.faults import CI, FAULTS, FULL, run_fault
from tests.reliability.figures import FaultFigures

BEGIN, END = "<!-- matrix:begin -->", "<!-- matrix:end -->"
HEADER = (
    "| fault | requests | wrong admits | errors by status | recovery s | settled s "
    "| audit required | audit lost | audit duplicated | chain verifies | details |\n"
    "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
)


def row(title: str, f: FaultFigures) -> str:
    audit = f.audit
    recovery = "never" if f.recovery_s is None else f"{f.recovery_s:.2f}"
    cells = [
        title,
        str(f.requests),
        str(f.wrong_admits),
        f.errors_text(),
        recovery,
        f"{f.settled_s:.2f}",
        str(audit.required) if audit else "-",
        str(audit.lost) if audit else "-",
        str(audit.duplicated) if audit else "-",
        {True: "yes", False: "NO", None: "-"}[f.chain_ok],
        details(f),
    ]
    return "| " + " | ".join(cells) + " |"


def details(f: FaultFigures) -> str:
    """What the fault's injector noted, and which reasons lost entries."""
    parts = [note.replace("|", "/") for note in f.notes]
    if f.audit is not None and f.audit.lost_by_reason:
        lost = ", ".join(f"{reason} {n}" for reason, n in f.audit.lost_by_reason)
        parts.append(f"lost by reason: {lost}")
    return "; ".join(parts) or "-"


def table(rows: list[str], command: str, label: str) -> str:
    return (
        f"{BEGIN}\n{label}, reproduced with `{command}`:\n\n{HEADER}\n"
        + "\n".join(rows)
        + f"\n{END}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI size (100 req/s, 3 s faults)")
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), help="these faults only")
    parser.add_argument("--out", type=Path, default=Path("RELIABILITY.md"))
    args = parser.parse_args()
    size = CI if args.short else FULL
    rows, healthy = [], True
    with tempfile.TemporaryDirectory(prefix="admitd-reliability-") as tmp:
        root = Path(tmp)
        pki = build_test_pki(root / "pki")
        for name in args.only or list(FAULTS):
            fault = FAULTS[name]
            print(f"{name}: {size.rate:.0f} req/s, fault held {size.hold:.0f} s", flush=True)
            figures, _ = run_fault(fault, pki, root / name, size)
            rows.append(row(fault.title, figures))
            healthy = healthy and _correct(figures)
            print(rows[-1], flush=True)
    command = (
        "make reliability" if not args.short else "python -m tests.reliability.run_matrix --short"
    )
    label = (
        f"{'Short run (CI size, not the full matrix)' if args.short else 'Full run'}: "
        f"{size.rate:.0f} req/s, {size.warm:.0f} s warm-up, "
        f"fault held {size.hold:.0f} s, {size.after:.0f} s after"
    )
    _write(args.out, table(rows, command, label))
    return 0 if healthy else 1


def _correct(f: FaultFigures) -> bool:
    audit_ok = f.audit is not None and f.audit.lost == 0 and f.audit.duplicated == 0
    return f.wrong_admits == 0 and f.recovery_s is not None and audit_ok and bool(f.chain_ok)


def _write(out: Path, block: str) -> None:
    text = out.read_text() if out.exists() else f"# Reliability\n\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    out.write_text(pattern.sub(lambda _: block, text) if pattern.search(text) else text + block)


if __name__ == "__main__":
    sys.exit(main())

"""The full soak (300 req/s for 10 minutes): writes RELIABILITY.md's soak block and a CSV.

    .venv/bin/python -m tests.soak.run_soak [--seconds N] [--out FILE] [--csv FILE]

`--seconds` shortens the run (the warm-up stays a quarter of it) to check the script;
the published figures come from the full ten minutes. Everything runs on loopback.
Exit status 0 when the footprint is flat, nothing was wrongly admitted, no audit entry
was lost and the chain verifies.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from tests.pki_fixtures import build_test_pki
from tests.soak.report import markdown, write_block, write_csv
from tests.soak.soak import FULL, SIZES, SoakResult, SoakSize, run_soak

# More than this and the host did not sustain the rate: the memory figures would then
# be those of a backlog (queued Checks), not of admitd at a steady rate.
MAX_UNSERVED_SHARE = 0.05


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default=FULL.name)
    parser.add_argument("--seconds", type=float, help="another length (warm-up: a quarter)")
    parser.add_argument("--rate", type=float, help="another rate, requests a second")
    parser.add_argument("--out", type=Path, default=Path("RELIABILITY.md"))
    parser.add_argument("--csv", type=Path, help="every sample, one row each")
    args = parser.parse_args()
    size = _sized(SIZES[args.size], args.seconds, args.rate)
    print(
        f"soak: {size.shape.rate:.0f} req/s for {size.shape.seconds:.0f} s, "
        f"warm-up {size.limits.warm_up_s:.0f} s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="admitd-soak-") as tmp:
        root = Path(tmp)
        result = run_soak(build_test_pki(root / "pki"), root / "run", size)
    command = _command(args)
    write_block(args.out, markdown(result, command))
    if args.csv is not None:
        write_csv(result, args.csv)
    print(result.verdict.summary())
    healthy = _healthy(result)
    print("soak: " + ("PASS" if healthy else "FAIL"), f"({args.out})")
    return 0 if healthy else 1


def _sized(size: SoakSize, seconds: float | None, rate: float | None) -> SoakSize:
    shape, limits = size.shape, size.limits
    if seconds is not None:
        shape = dataclasses.replace(shape, seconds=seconds)
        limits = dataclasses.replace(limits, warm_up_s=seconds / 4)
    if rate is not None:
        shape = dataclasses.replace(shape, rate=rate)
    return dataclasses.replace(size, shape=shape, limits=limits)


def _command(args: argparse.Namespace) -> str:
    if args.size == FULL.name and args.seconds is None and args.rate is None:
        return "make soak"
    options = [f"--size {args.size}"]
    options += [f"--seconds {args.seconds:g}"] if args.seconds is not None else []
    options += [f"--rate {args.rate:g}"] if args.rate is not None else []
    return "python -m tests.soak.run_soak " + " ".join(options)


def _healthy(r: SoakResult) -> bool:
    audit_ok = r.audit.lost == 0 and r.audit.duplicated == 0 and r.chain_ok
    sustained = r.tally.unserved_share() <= MAX_UNSERVED_SHARE
    if not sustained:
        print(f"soak: {r.tally.unserved_share():.1%} of requests not served: host overloaded")
    return r.verdict.ok and r.tally.wrong_admits == 0 and audit_ok and sustained


if __name__ == "__main__":
    sys.exit(main())

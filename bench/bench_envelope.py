"""Seal/open throughput per KMS provider, with and without the DEK cache.

Run: .venv/bin/python bench/bench_envelope.py [--seconds 1.0] [--size 256]
Prints ops/s for local, dev and pkcs11 (SoftHSM2 token in a temp dir, skipped
when libsofthsm2.so is absent). One event loop, one call at a time, one record context;
PKCS#11 calls run on the KMS worker thread, so its numbers include the thread hop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from admitd.envelope import Context, DekCache, RecordType, Sealer
from admitd.kms import DEFAULT_ALIASES, DevKms, Kms, LocalKms, create_keyring_file

SOFTHSM = Path("/usr/lib/softhsm/libsofthsm2.so")
CTX = Context(RecordType.DEVICE_TELEMETRY, "device-1", "acme")


async def rate(fn: Callable[[], Awaitable[object]], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(50):
            await fn()
        count += 50
    return count / (time.perf_counter() - start)


async def measure(kms: Kms, seconds: float, size: int) -> dict[str, float]:
    plaintext = os.urandom(size)
    uncached, cached = Sealer(kms), Sealer(kms, cache=DekCache())
    envelope = await uncached.seal(plaintext, CTX)
    return {
        "seal": await rate(lambda: uncached.seal(plaintext, CTX), seconds),
        "open uncached": await rate(lambda: uncached.open(envelope, CTX), seconds),
        "open cached": await rate(lambda: cached.open(envelope, CTX), seconds),
    }


def bench(name: str, kms: Kms, seconds: float, size: int) -> None:
    results = asyncio.run(measure(kms, seconds, size))
    for what, ops in results.items():
        print(f"{name:8} {what:14} {ops:>10,.0f} ops/s  ({1e6 / ops:6.1f} us/op)")


@contextmanager
def softhsm_token(base: Path) -> Iterator[Kms]:
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    init = ["softhsm2-util", "--init-token", "--free", "--label", "bench"]
    subprocess.run(
        [*init, "--so-pin", "12345678", "--pin", "1234"], check=True, capture_output=True
    )
    from admitd.kms.pkcs11 import Pkcs11Kms

    kms = Pkcs11Kms(str(SOFTHSM), "bench", "1234")
    for alias in DEFAULT_ALIASES:
        kms.create_alias(alias)
    try:
        yield kms
    finally:
        kms.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=256, help="plaintext bytes")
    args = parser.parse_args()
    print(f"plaintext {args.size} bytes, {args.seconds}s per measurement, one call at a time")
    with tempfile.TemporaryDirectory() as tmp:
        keyring = Path(tmp) / "keyring.json"
        create_keyring_file(keyring, DEFAULT_ALIASES)
        bench("local", LocalKms(keyring), args.seconds, args.size)
        bench("dev", DevKms(DEFAULT_ALIASES, dev_mode=True), args.seconds, args.size)
        if not SOFTHSM.exists():
            print(f"pkcs11   skipped: {SOFTHSM} not found")
            return
        with softhsm_token(Path(tmp)) as hsm:
            bench("pkcs11", hsm, args.seconds, args.size)


if __name__ == "__main__":
    main()

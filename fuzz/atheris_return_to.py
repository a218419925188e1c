"""atheris: signed return_to tokens and the step-up reason: None for anything not signed,
a safe relative path for anything verified, never an exception."""

from __future__ import annotations

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd"]):
    from admitd.web.return_to import ReturnToSigner, is_safe_relative_path
    from admitd.web.step_up_reason import verify_reason

NOW = 1_800_000_000.0
SIGNER = ReturnToSigner(bytes(range(32)))
REASON_KEY = SIGNER.subkey("step-up-reason")
SEEDS = [
    SIGNER.sign("api.test", "/reports/q3?x=1", NOW).encode(),
    b"v1.1800000100.Lw.AAAA",
    b"60.new_device,ip_reputation.00ff",
]


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    token = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 600)).decode(
        "utf-8", "surrogateescape"
    )
    host = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 40)).decode(
        "utf-8", "surrogateescape"
    )
    reason = provider.ConsumeBytes(provider.remaining_bytes()).decode("utf-8", "surrogateescape")
    try:
        path = SIGNER.verify(token, host, NOW)
        assert path is None or is_safe_relative_path(path)
        verify_reason(REASON_KEY, token, reason)
    except Exception as exc:
        if tolerated(exc):
            return
        raise


if __name__ == "__main__":
    main("return_to", one_input, SEEDS)

"""Why the step-up page asks: a signed, optional `reason` beside the return_to token.

The Check that redirected knows the route's MFA max age and the device-risk signals; the
link carries them as `reason=<max_age>.<signal,signal>.<mac>`, the MAC (a subkey of the
return_to signer) binding them to that very return_to token (itself bound to the host
and an expiry). A reason that is unsigned, forged, copied onto another token or names a
signal admitd does not know is dropped whole: the page never shows what it cannot vouch for.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from admitd.core.risk import Signal

__all__ = ["REASON_KEY_LABEL", "StepUpReason", "sign_reason", "verify_reason"]

REASON_KEY_LABEL = "step-up-reason"
_LABEL = b"admitd/step-up-reason/v1\x00"
_MAX_AGE = 86_400  # the policy loader's bound on `mfa_max_age`
_KNOWN = frozenset(Signal)


@dataclass(frozen=True, slots=True)
class StepUpReason:
    max_age: int  # seconds: the route (or the risk level) wants MFA at most this old
    signals: tuple[Signal, ...] = ()  # device-risk signals that raised the step-up


def sign_reason(key: bytes, return_to: str, reason: StepUpReason) -> str:
    """The `reason` query value for a step-up link carrying `return_to` (the signed token)."""
    body = _body(reason.max_age, reason.signals)
    return f"{body}.{_mac(key, return_to, body)}"


def verify_reason(key: bytes, return_to: str, value: str) -> StepUpReason | None:
    """The reason `value` states, if it was signed with `return_to`; else None."""
    # Both come from the query string: what admitd signed is ASCII (digits, signal names,
    # hex; the return_to token), so anything else is refused before it is encoded.
    parts = value.split(".")
    if len(parts) != 3 or not return_to or len(value) > 512:
        return None
    if not value.isascii() or not return_to.isascii():
        return None
    age, names, mac = parts
    if not (age.isascii() and age.isdigit()) or len(age) > 6 or not 0 < int(age) <= _MAX_AGE:
        return None
    expected = _mac(key, return_to, f"{age}.{names}")
    if not hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii")):
        return None
    signals = tuple(names.split(",")) if names else ()
    if not all(name in _KNOWN for name in signals):
        return None  # signed by a newer admitd: show nothing rather than a guess
    return StepUpReason(int(age), tuple(Signal(name) for name in signals))


def _body(max_age: int, signals: tuple[Signal, ...] | tuple[str, ...]) -> str:
    return f"{max_age}.{','.join(signals)}"


def _mac(key: bytes, return_to: str, body: str) -> str:
    message = _LABEL + return_to.encode() + b"\x00" + body.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()

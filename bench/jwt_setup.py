"""The benchmark's JWT-route variant: a local signing key, its JWKS on loopback, one token."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port

ISSUER = "https://idp.bench"
AUDIENCE = "https://api.bench"


@dataclass(frozen=True, slots=True)
class BenchJwt:
    config: dict[str, Any]  # admitd's `jwt:` section
    key: RSAKey  # signs the tokens; its public half is served as the JWKS

    def fresh_token(self) -> str:
        """An analyst (privileged) who verified MFA just now, valid for two hours; signed
        per variant, so a long run's MFA never ages past the route's max age."""
        return _token(self.key)


def start_jwks(group: ProcessGroup, work: Path) -> BenchJwt:
    """Serve a fresh key's JWKS with `python -m http.server` (stopped with the group), the
    way admitd fetches an IdP's; tokens are signed with the key."""
    key = RSAKey.generate_key(2048, parameters={"kid": "bench-1"}, private=True)
    served = work / "jwks"
    served.mkdir(exist_ok=True)
    (served / "jwks.json").write_text(json.dumps(KeySet([key]).as_dict(private=False)))
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    process = group.start("jwks", [*argv, "--directory", str(served)])
    wait_for_port(port, process=process, timeout=15)
    issuer = {
        "issuer": ISSUER,
        "jwks_uri": f"http://127.0.0.1:{port}/jwks.json",
        "audiences": [AUDIENCE],
        "default_organisation": "bench",
    }
    return BenchJwt({"issuers": [issuer]}, key)


def _token(key: RSAKey) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "bench-analyst", "groups": ["analyst"],
        "iat": now, "exp": now + 7200, "auth_time": now, "amr": ["pwd", "otp"],
    }  # fmt: skip
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

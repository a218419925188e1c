"""atheris: `JwtVerifier.verify` on any bearer text: Verified or Refused, never an exception,
and Verified only for the exact token the test IdP signed."""

from __future__ import annotations

import asyncio
from types import MappingProxyType

import atheris
from harness import main, tolerated

with atheris.instrument_imports(include=["admitd", "joserfc"]):
    from admitd.jwt.config import IssuerConfig, JwtConfig
    from admitd.jwt.source import JwtIdentity, jwt_from_request
    from admitd.jwt.verifier import Verified

from admitd.core.context import RequestContext
from tests.unit.jwt_tokens import AUDIENCE, ISSUER, JWKS_URI, NOW, Idp

IDP = Idp()
ISSUER_CONFIG = IssuerConfig(
    issuer=ISSUER, audiences=(AUDIENCE,), jwks_uri=JWKS_URI, organisation_claim="org",
    role_map=MappingProxyType({}),
)  # fmt: skip
IDENTITY = JwtIdentity(JwtConfig(issuers=(ISSUER_CONFIG,)), IDP.fetch)
LOOP = asyncio.new_event_loop()
LOOP.run_until_complete(IDENTITY.start())
SIGNED = {IDP.token(), IDP.token(IDP.ec, "ES256"), IDP.token(groups=["admin"], amr=["otp"])}
SEEDS = [token.encode() for token in SIGNED]


def one_input(data: bytes) -> None:
    token = data.decode("utf-8", "replace")
    headers = MappingProxyType({"authorization": f"Bearer {token}"})
    jwt_from_request(RequestContext("GET", "https", "api.test", "/", headers=headers))
    try:
        result = LOOP.run_until_complete(IDENTITY.verifier.verify(token, NOW))
    except Exception as exc:
        if tolerated(exc):
            return
        raise
    if isinstance(result, Verified):
        assert token in SIGNED or token.rsplit(".", 1)[0] in {t.rsplit(".", 1)[0] for t in SIGNED}


if __name__ == "__main__":
    main("jwt", one_input, SEEDS)

"""A JWT issuer for the soak: one ES256 key, its JWKS served over loopback HTTP, and a
fresh token for every request (a new `jti` each), so admitd's verified-token cache sees
a stream of tokens it has never met and only its bound can cap it."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

__all__ = ["AUDIENCE", "LocalIssuer"]

AUDIENCE = "https://api.soak.test"
_KID = "soak-1"
_TOKEN_SECONDS = 4 * 3600  # longer than any soak: no token expires mid-run


class LocalIssuer:
    def __init__(self) -> None:
        self._key = ECKey.generate_key("P-256", parameters={"kid": _KID})
        body = json.dumps(KeySet([self._key]).as_dict(private=False)).encode()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(body))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def config(self, cache_size: int) -> dict[str, object]:
        """admitd's `jwt:` section trusting this issuer."""
        issuer = {
            "issuer": self.url,
            "jwks_uri": self.url + "/jwks",
            "audiences": [AUDIENCE],
            "algorithms": ["ES256"],
            "organisation_claim": "org",
        }
        return {"issuers": [issuer], "cache_size": cache_size}

    def token(self, user_id: str, organisation: str, serial: int) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": user_id,
            "org": organisation,
            "groups": ["viewer"],
            "iat": now - 5,
            "exp": now + _TOKEN_SECONDS,
            "jti": f"{user_id}-{serial}",
            "amr": ["pwd"],
        }
        return jwt.encode({"alg": "ES256", "kid": _KID}, claims, self._key)


def _handler(jwks: bytes) -> type[BaseHTTPRequestHandler]:
    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/jwks"
            self.send_response(200 if found else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            if found:
                self.wfile.write(jwks)

        def log_message(self, format: str, *args: object) -> None:
            return  # quiet: admitd fetches at start and on an unknown key only

    return Jwks

"""The browser side of the test IdP's flows: cookies kept, every redirect inspected."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

__all__ = ["IdpBrowser", "IdpError", "pkce_pair"]


class IdpError(RuntimeError):
    """The IdP would not start, or refused a flow (its `error` is in the message)."""


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_: Any, **__: Any) -> None:
        return None  # each hop is inspected: the last one goes to the client, not followed


class IdpBrowser:
    """A cookie jar and no automatic redirects: what a browser keeps between IdP visits, so a
    second authorization (step-up with `max_age`) meets the IdP session of the first."""

    def __init__(self) -> None:
        self.cookies = CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def page(self, url: str) -> str:
        """GET `url`, which must answer 200, and return its body."""
        with self._opener.open(url, timeout=10) as reply:
            return str(reply.read().decode(errors="replace"))

    def location(self, url: str, form: dict[str, str] | None = None) -> str:
        """GET `url` (POST `form` when given) and return the absolute Location it redirects to."""
        data = None if form is None else urllib.parse.urlencode(form).encode()
        try:
            with self._opener.open(url, data=data, timeout=10) as reply:
                body = reply.read().decode(errors="replace")
                raise IdpError(f"{url}: expected a redirect, got {reply.status}: {body[:300]}")
        except urllib.error.HTTPError as error:
            if error.code not in (302, 303):
                body = error.read().decode(errors="replace")
                raise IdpError(f"{url}: {error.code}: {body[:500]}") from None
            return urllib.parse.urljoin(url, str(error.headers["Location"]))

"""A real OpenID Provider for tests: panva's oidc-provider on a free loopback port."""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from joserfc.jwk import RSAKey

from tests.idp.browser import IdpBrowser, IdpError, pkce_pair
from tests.integration.redis_server import free_port

__all__ = [
    "API",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "OTHER_API",
    "USERS",
    "Idp",
    "IdpBrowser",
    "IdpError",
    "ensure_node_modules",
    "generate_signing_key",
    "has_node",
    "start_idp",
]

IDP_DIR = Path(__file__).resolve().parent
CLIENT_ID = "admitd"  # client_secret_basic; "admitd-post" is the same client with _post
CLIENT_SECRET = "admitd-test-secret"
API = "https://api.test"
OTHER_API = "https://other.test"
DEFAULT_REDIRECT_URI = "https://admitd.test/.admitd/oidc/callback"
# Mirrors USERS in provider.mjs: what each user's tokens say.
USERS: dict[str, dict[str, Any]] = {
    "alice": {"org": "acme", "roles": ["admin"], "amr": ["pwd", "otp"], "acr": "mfa"},
    "bob": {"org": "acme", "roles": ["viewer"], "amr": ["pwd"], "acr": "pwd"},
    "carol": {"org": "globex", "roles": ["finance"], "amr": ["hwk"], "acr": "phr"},
}

Json = dict[str, Any]


def has_node() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def ensure_node_modules() -> None:
    """`npm ci` from the committed lock file, once (`make node-deps` does it ahead of time)."""
    if (IDP_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=IDP_DIR, check=True
    )


def generate_signing_key() -> Json:
    """A private RS256 JWK with a fresh kid, as oidc-provider's `jwks` takes it."""
    parameters: Any = {"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}
    return RSAKey.generate_key(2048, parameters=parameters, private=True).as_dict(private=True)


class Idp:
    """One oidc-provider process. `keys` is its private signing key set (first one signs);
    tests may sign their own tokens with them (expired, wrong audience...)."""

    def __init__(
        self,
        workdir: Path,
        *,
        keys: Sequence[Json] | None = None,
        redirect_uris: Sequence[str] = (),
        access_token_ttl: int = 600,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()  # a chosen port: an issuer configured before it runs
        self.keys: list[Json] = list(keys or [generate_signing_key(), generate_signing_key()])
        self.redirect_uris: list[str] = list(redirect_uris) or [DEFAULT_REDIRECT_URI]
        self.access_token_ttl = access_token_ttl
        self._process: subprocess.Popen[bytes] | None = None
        self._discovery: Json | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signing_kid(self) -> str:
        return str(self.keys[0]["kid"])

    # -- process ---------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> None:
        if self._process is not None:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        keys_file = self.workdir / "jwks.json"
        keys_file.write_text(json.dumps({"keys": self.keys}))
        keys_file.chmod(0o600)
        command = ["node", str(IDP_DIR / "provider.mjs"), "--port", str(self.port)]
        command += ["--jwks", str(keys_file), "--access-token-ttl", str(self.access_token_ttl)]
        for uri in self.redirect_uris:
            command += ["--redirect-uri", uri]
        with (self.workdir / "idp.log").open("ab") as log:
            self._process = subprocess.Popen(command, cwd=IDP_DIR, stdout=log, stderr=log)
        self._wait_for_discovery(timeout)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._discovery = None

    def restart(
        self, *, keys: Sequence[Json] | None = None, redirect_uris: Sequence[str] | None = None
    ) -> None:
        """Same issuer (same port), new settings. The IdP's sessions and grants are lost."""
        self.stop()
        if keys is not None:
            self.keys = list(keys)
        if redirect_uris is not None:
            self.redirect_uris = list(redirect_uris)
        self.start()

    def rotate_keys(self, *, keep_old: bool = True) -> str:
        """Restart with a new signing key first (and the previous signer second, unless
        `keep_old=False`), so new tokens carry a new kid. Returns that kid."""
        new = generate_signing_key()
        self.restart(keys=[new, self.keys[0]] if keep_old else [new])
        return str(new["kid"])

    def _wait_for_discovery(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self.workdir / "idp.log").read_text(errors="replace")[-2000:]
                self._process = None
                raise IdpError(f"oidc-provider exited: {log}")
            try:
                self._discovery = self._get_json("/.well-known/openid-configuration")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise IdpError(f"oidc-provider did not answer discovery on port {self.port}")

    def __enter__(self) -> Idp:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- metadata --------------------------------------------------------------------------

    def discovery(self) -> Json:
        if self._discovery is None:
            self._discovery = self._get_json("/.well-known/openid-configuration")
        return self._discovery

    def jwks(self) -> Json:
        """The public key set as published now (fetched, not from `keys`)."""
        return self._get_json(urllib.parse.urlsplit(self.discovery()["jwks_uri"]).path)

    # -- flows -----------------------------------------------------------------------------

    def authorization_url(self, **params: str) -> str:
        return f"{self.discovery()['authorization_endpoint']}?{urllib.parse.urlencode(params)}"

    def sign_in(
        self,
        authorization_url: str,
        user: str | None,
        *,
        auth_age: int = 0,
        amr: Sequence[str] | None = None,
        acr: str | None = None,
        browser: IdpBrowser | None = None,
    ) -> str:
        """Follow an authorization request (e.g. the Location admitd answered) through the
        test-only login as `user` and return the redirect to the client (code or error).
        `auth_age` makes the login that many seconds old; `amr`/`acr` override the user's.
        `user=None` names nobody, as a browser would: the IdP answers as `login_as` said."""
        browser = browser or IdpBrowser()
        login = {"user": user, "auth_age": str(auth_age)} if user else {}
        if amr is not None:
            login["amr"] = ",".join(amr)
        if acr is not None:
            login["acr"] = acr
        url = browser.location(authorization_url)
        for _ in range(8):
            if not url.startswith(self.issuer + "/"):
                return url
            if login and urllib.parse.urlsplit(url).path.startswith("/interaction/"):
                url = f"{url}?{urllib.parse.urlencode(login)}"
            url = browser.location(url)
        raise IdpError(f"too many redirects inside the IdP, last {url}")

    def user_tokens(
        self,
        user: str | None,
        *,
        auth_age: int = 0,
        scope: str = "openid profile email",
        resource: str | None = None,
        client_id: str = CLIENT_ID,
        amr: Sequence[str] | None = None,
        acr: str | None = None,
        extra: dict[str, str] | None = None,
        browser: IdpBrowser | None = None,
    ) -> Json:
        """The authorization code flow with PKCE S256 for `user`; the token response
        (`id_token`, `access_token`: a JWT when `resource` is given). `extra` adds
        authorization parameters (`max_age`, `acr_values`, `prompt`...); a shared `browser`
        keeps the IdP session between calls (step-up)."""
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        params = {
            "client_id": client_id,
            "response_type": "code",
            "scope": scope,
            "redirect_uri": self.redirect_uris[0],
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": state,
            "nonce": nonce,
            **({"resource": resource} if resource else {}),
            **(extra or {}),
        }
        url = self.authorization_url(**params)
        callback = self.sign_in(url, user, auth_age=auth_age, amr=amr, acr=acr, browser=browser)
        code = self._code_from(callback, state)
        return self._token(
            client_id,
            grant_type="authorization_code",
            code=code,
            redirect_uri=self.redirect_uris[0],
            code_verifier=verifier,
        )

    def sign_out(self, id_token: str, post_logout_redirect_uri: str, browser: IdpBrowser) -> str:
        """RP-initiated logout as a browser does it (the IdP's page submits itself): returns
        where the IdP sends the browser afterwards."""
        query = {"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_redirect_uri}
        page = browser.page(f"{self.discovery()['end_session_endpoint']}?{urlencode(query)}")
        action = re.search(r'action="([^"]+)"', page)
        xsrf = re.search(r'name="xsrf" value="([^"]+)"', page)
        if action is None or xsrf is None:
            raise IdpError(f"no logout form on the end-session page: {page[:300]}")
        return browser.location(action[1], {"xsrf": xsrf[1], "logout": "yes"})

    def machine_token(
        self, *, scope: str = "api:read", resource: str = API, client_id: str = CLIENT_ID
    ) -> Json:
        """client_credentials: a JWT access token for `resource` whose `sub` is the client."""
        return self._token(
            client_id, grant_type="client_credentials", scope=scope, resource=resource
        )

    def login_as(
        self,
        user: str | None,
        *,
        auth_age: int = 0,
        amr: Sequence[str] | None = None,
        acr: str | None = None,
    ) -> None:
        """What the IdP's login prompt answers from now on when a browser (Chromium, following
        admitd's redirect) reaches it without naming a user; `None` shows a chooser page."""
        body: Json = {} if user is None else {"user": user, "auth_age": auth_age}
        if amr is not None:
            body["amr"] = ",".join(amr)
        if acr is not None:
            body["acr"] = acr
        self._post("/test/login-as", json.dumps(body).encode(), "application/json")

    def register_client(
        self, redirect_uris: Sequence[str], post_logout_redirect_uris: Sequence[str] = ()
    ) -> Json:
        """Dynamic client registration (RFC 7591), for a redirect URI known only after the
        IdP started (an edge on a free port); the reply has client_id and client_secret."""
        metadata = {
            "redirect_uris": list(redirect_uris),
            "post_logout_redirect_uris": list(post_logout_redirect_uris),
            "grant_types": ["authorization_code", "refresh_token"],
            "require_auth_time": True,
        }
        path = urllib.parse.urlsplit(self.discovery()["registration_endpoint"]).path
        return self._post(path, json.dumps(metadata).encode(), "application/json")

    # -- HTTP ------------------------------------------------------------------------------

    def _code_from(self, callback: str, state: str) -> str:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
        if "error" in query:
            raise IdpError(f"{query['error']}: {query.get('error_description', '')}")
        if query.get("state") != state or query.get("iss") != self.issuer:
            raise IdpError(f"callback with wrong state or iss: {callback}")
        return query["code"]

    def _token(self, client_id: str, **form: str) -> Json:
        basic = base64.b64encode(f"{client_id}:{CLIENT_SECRET}".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        if client_id == "admitd-post":
            headers = {}
            form |= {"client_id": client_id, "client_secret": CLIENT_SECRET}
        path = urllib.parse.urlsplit(self.discovery()["token_endpoint"]).path
        body = urllib.parse.urlencode(form).encode()
        return self._post(path, body, "application/x-www-form-urlencoded", headers)

    def _get_json(self, path: str) -> Json:
        with urllib.request.urlopen(self.issuer + path, timeout=5) as reply:
            return json.loads(reply.read())  # type: ignore[no-any-return]

    def _post(
        self, path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> Json:
        request = urllib.request.Request(
            self.issuer + path,
            data=body,
            headers={"Content-Type": content_type, **(headers or {})},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                text = reply.read()
                reply_json: Json = json.loads(text) if text else {}
                return reply_json
        except urllib.error.HTTPError as error:
            raise IdpError(f"{path}: {error.code}: {error.read().decode()[:500]}") from None


@contextmanager
def start_idp(
    tmp_dir: Path,
    *,
    keys: Sequence[Json] | None = None,
    redirect_uris: Sequence[str] = (),
    access_token_ttl: int = 600,
    port: int | None = None,
) -> Iterator[Idp]:
    """A started IdP (deps installed with `npm ci` when missing), stopped on exit; on `port`
    when given (else a free one)."""
    ensure_node_modules()
    with Idp(
        tmp_dir,
        keys=keys,
        redirect_uris=redirect_uris,
        access_token_ttl=access_token_ttl,
        port=port,
    ) as idp:
        yield idp

"""Browser e2e helpers: Redis, the step-up web app in a thread, an edge Envoy, Chromium.

Envoy's edge config comes from `render_edge_config` with `web_port` set, which adds the
step-up route (`/.admitd/` -> cluster `admitd_web`, ext_authz disabled on that route).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from admitd.devstack.processes import ProcessGroup, envoy_binary, free_port, wait_for_port
from admitd.envelope import Sealer
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.mfa.config import MfaConfig
from admitd.mfa.passkey_store import RedisPasskeyStore
from admitd.mfa.passkeys import PasskeyPolicy, PasskeyService
from admitd.mfa.state import RedisMfaState
from admitd.mfa.totp import TotpService
from admitd.sessions import Session, new_session_token
from admitd.sessions.redis_client import client_from_url
from admitd.sessions.redis_store import RedisSessionStore
from admitd.web import ReturnToSigner, build_web_app, start_web_server
from tests.pki_fixtures import PkiSet
from tests.sessions import make_session

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# /app/ needs the client certificate, a session, and MFA under a minute: a stale
# session is sent to the step-up page by admitd itself (302), and back after it.
APP_POLICY = """
unmatched: deny
routes:
  - name: app
    match: {path_prefix: /app/}
    identities: any
    session: required
    mfa_max_age: 60
"""
SIGNING_KEY = b"e2e-signing-key!" * 2


@dataclass
class WebApp:
    """The step-up app with Redis-backed stores, served from its own event-loop thread."""

    redis_url: str
    port: int
    origin: str
    signer: ReturnToSigner = field(default_factory=lambda: ReturnToSigner(SIGNING_KEY))
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    def start(self) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.run(self._start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=15)

    def stop(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)

    async def _start(self) -> None:
        self.sessions = RedisSessionStore(client_from_url(self.redis_url), cache_ttl=0)
        client = client_from_url(self.redis_url)
        sealer = Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES))
        self.totp = TotpService(RedisMfaState(client), sealer, self.sessions, MfaConfig())
        policy = PasskeyPolicy(rp_id="localhost", rp_name="admitd e2e", origins=(self.origin,))
        self.passkey_store = RedisPasskeyStore(client)
        passkeys = PasskeyService(self.passkey_store, sealer, self.sessions, policy)
        app = build_web_app(
            store=self.sessions,
            totp=self.totp,
            passkeys=passkeys,
            signer=self.signer,
            cookie_name="__Host-admitd_session",
            clock=time.time,
        )
        self.runner: web.AppRunner = await start_web_server(app, f"127.0.0.1:{self.port}")
        self._client = client

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.sessions.close()
        await self._client.aclose()

    def stale_session(self, user_id: str, *, enrolment_grant: float | None = None) -> str:
        """A privileged session whose MFA is two hours old; returns the cookie value.

        `enrolment_grant`: seconds the session may enrol the user's first factor, as the
        login service grants right after primary authentication."""
        token, ref = new_session_token(user_id)
        session = make_session(
            ref.session_id,
            user_id=user_id,
            roles={"admin"},
            device_id="browser-1",
            created_ago=7200,
            idle_timeout=1800,
            mfa_ago=7200,
            enrolment_grant_for=enrolment_grant,
        )
        self.run(self.sessions.create(ref, session))
        return token

    def session(self, token: str) -> Session | None:
        from admitd.sessions import parse_session_token

        ref = parse_session_token(token)
        assert ref is not None
        return self.run(self.sessions.get(ref))


@dataclass
class Edge:
    group: ProcessGroup
    https_port: int

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.https_port}"


def start_edge(
    pki: PkiSet, work: Path, group: ProcessGroup, ports_in: tuple[int, int], redis_url: str
) -> Edge:
    """Envoy (ext_authz on) + admitd's Check server (sharing Redis with the step-up app,
    signing return_to with its key) + the echo upstream."""
    https_port, web_port = ports_in
    ports = {name: free_port() for name in ("authz", "metrics", "upstream", "admin", "spare")}
    (work / "policies.yaml").write_text(APP_POLICY)
    key_file = work / "web-signing.key"
    key_file.write_bytes(SIGNING_KEY)
    key_file.chmod(0o600)
    config = {
        "listen": f"127.0.0.1:{ports['authz']}",
        "metrics_listen": f"127.0.0.1:{ports['metrics']}",
        "policies": str(work / "policies.yaml"),
        "tls": {"trust_bundle": str(pki.trust_bundle)},
        "redis_url": redis_url,
        "dev_mode": True,
        # admitd's own pages are not routed in this test (Envoy sends /.admitd/ to the
        # in-process app); the section gives admitd the key that signs return_to.
        "web": {
            "listen": f"127.0.0.1:{ports['spare']}",
            "signing_key_file": str(key_file),
            "rp_id": "localhost",
            "origins": [f"https://localhost:{https_port}"],
        },
    }
    (work / "admitd.yaml").write_text(yaml.safe_dump(config))
    rendered = render_edge_config(
        EdgeSettings(
            listen_port=https_port,
            admin_port=ports["admin"],
            authz_port=ports["authz"],
            upstream_port=ports["upstream"],
            server_cert=pki.directory / "server.pem",
            server_key=pki.directory / "server.key",
            trust_bundle=pki.trust_bundle,
            web_port=web_port,
        )
    )
    (work / "envoy.yaml").write_text(rendered)
    python = sys.executable
    upstream = group.start(
        "upstream", [python, "-m", "admitd.devstack.echo", "--port", str(ports["upstream"])]
    )
    admitd = group.start(
        "admitd", [python, "-m", "admitd", "serve", "--config", str(work / "admitd.yaml")]
    )
    envoy_argv = [envoy_binary(), "-c", str(work / "envoy.yaml"), "--concurrency", "1"]
    envoy_argv += ["--base-id", str(ports["admin"]), "--log-level", "warn"]
    envoy = group.start("envoy", envoy_argv)
    wait_for_port(ports["upstream"], process=upstream)
    wait_for_port(ports["authz"], process=admitd)
    wait_for_port(https_port, process=envoy)
    return Edge(group, https_port)

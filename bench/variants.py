"""The benchmark's variants: what the edge asks, on which route, as whom; and --only."""

from __future__ import annotations

from dataclasses import dataclass, replace

from session_setup import SESSION_PATH

__all__ = [
    "DENIED_STATUS",
    "DENY_PATH",
    "DENY_PREFIX",
    "PATH",
    "Variant",
    "chosen_variants",
    "variants",
    "with_before",
]

PATH = "/api/bench"  # the certificate route: any dev user certificate
DENY_PREFIX = "/private/"  # a route no user certificate may use (admitd_setup.DENY_ROUTE)
DENY_PATH = DENY_PREFIX + "bench"
# identity_not_allowed answers 495 client_certificate_invalid, as every refused certificate
# does (admitd.core.decision); it is a policy denial all the same, audited as
# decision.denied. 403 would take a CEL condition or a session route instead.
DENIED_STATUS = 495

# Always run in the closed-loop (wrk) mode: the ratios divide by them.
WRK_BASE = ("ceiling", "floor", "admitd")
# Always run in the fixed-rate mode: the latency targets compare them.
FIXED_RATE_BASE = ("ceiling", "floor", "admitd", "admitd-full")


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    authz: str  # "none" | "floor" | "http-floor" | "admitd"
    max_streams: int = 0  # authz cluster max_concurrent_streams; 0 = Envoy's default
    session: bool = False  # the privileged route with a fresh MFA session (bearer token)
    jwt: bool = False  # the privileged route with a fresh-MFA JWT bearer token
    uds: bool = False  # Check over a Unix socket in the work dir instead of loopback TCP
    event_loop: str = "auto"  # admitd's `event_loop`: auto is uvloop when installed
    # kms: (a local keyring in the work dir), audit: (Redis stream + local spool) and
    # risk:, so device risk is judged on session routes and denials are audited.
    full_policy: bool = False
    denied: bool = False  # every request refused by policy (alice on DENY_PATH)
    # Two clients at once: mallory floods DENY_PATH while alice's admits on PATH are
    # measured (and measured alone first, in the same stack).
    mixed: bool = False
    # Envoy's HTTP ext_authz (http_service) instead of gRPC: admitd on `http_listen`,
    # the edge from admitd.devstack.envoy_http_config (XFCC set by Envoy).
    http: bool = False
    workers: int = 1  # admitd's `workers:` (the supervisor and its workers' CPU together)
    # The edge's admitd cluster as shipped for workers: 4 streams per connection, renewed
    # every 60 s (EdgeSettings.spread_over_workers), so Checks spread over the workers.
    spread: bool = False
    src: str = ""  # run admitd from this server/ directory (PYTHONPATH) instead

    @property
    def path(self) -> str:
        if self.denied:
            return DENY_PATH
        return SESSION_PATH if self.has_user else PATH

    @property
    def has_user(self) -> bool:
        return self.session or self.jwt

    @property
    def expected_status(self) -> int:
        return DENIED_STATUS if self.denied else 200

    @property
    def needs_redis(self) -> bool:
        return self.has_user or self.full_policy


def variants(max_streams: list[int]) -> list[Variant]:
    chosen = [
        Variant("ceiling", "none"),
        Variant("floor", "floor"),
        Variant("admitd", "admitd"),
        Variant("admitd-uds", "admitd", uds=True),
        Variant("admitd-asyncio", "admitd", event_loop="asyncio"),
        Variant("admitd-session", "admitd", session=True),
        Variant("admitd-jwt", "admitd", jwt=True),
        Variant("admitd-full", "admitd", session=True, full_policy=True),
        Variant("admitd-deny", "admitd", full_policy=True, denied=True),
        Variant("admitd-mixed", "admitd", full_policy=True, mixed=True),
        Variant("http-floor", "http-floor", http=True),
        Variant("admitd-http", "admitd", http=True),
        Variant("admitd-http-full", "admitd", session=True, full_policy=True, http=True),
        # 1 vs 2 workers behind the same edge settings (docs/workers.md).
        Variant("admitd-w1", "admitd", spread=True),
        Variant("admitd-w2", "admitd", spread=True, workers=2),
    ]
    chosen += [Variant(f"admitd-ms{n}", "admitd", max_streams=n) for n in max_streams]
    return chosen


def chosen_variants(
    max_streams: list[int], only: str, *, fixed_rate: bool = False
) -> list[Variant]:
    """The variants to run, in the order of `variants()`.

    Closed loop: all of them, or the base ones plus those named in `only`. Fixed rate:
    the base ones plus those named (admitd-mixed is two closed loops, so it has no
    fixed-rate form)."""
    every = variants(max_streams)
    base = FIXED_RATE_BASE if fixed_rate else WRK_BASE
    if not only and not fixed_rate:
        return every
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = {v.name for v in every}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(
            f"--only: unknown variant {unknown[0]!r}; one of {', '.join(sorted(known))}"
        )
    if fixed_rate and "admitd-mixed" in wanted:
        raise SystemExit("--only: admitd-mixed runs two wrk loads at once; not with --fixed-rate")
    return [v for v in every if v.name in {*wanted, *base}]


def with_before(chosen: list[Variant], src: str) -> list[Variant]:
    """`chosen` plus, after each admitd variant on gRPC with one worker (what any older
    build serves), the same variant run from `src` as "<name>-before"."""
    out: list[Variant] = []
    for variant in chosen:
        out.append(variant)
        if variant.authz == "admitd" and not variant.http and variant.workers == 1:
            out.append(replace(variant, name=f"{variant.name}-before", src=src))
    return out

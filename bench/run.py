"""Benchmark admitd through the real Envoy: ceiling, floor and admitd variants in one run.

    wrk or h2load -> client Envoy (plain HTTP in, mTLS out with a dev user's certificate)
        -> edge Envoy (mTLS termination [+ ext_authz -> Check server]) -> upstream

The variants share that path; only the edge, the Check server and the route differ:

- ceiling: the edge without ext_authz (what Envoy + upstream cost alone),
- floor:   the edge + bench/floor_server.py, an always-allow grpc.aio Check server
           (what Python gRPC itself costs),
- admitd:  the edge + `python -m admitd serve` deciding on the client certificate, Check
  over loopback TCP; admitd-uds the same with Check over a Unix socket in the work dir
  (`listen: unix://...`, the edge's admitd cluster a `pipe` address); admitd-asyncio is
  admitd on the standard asyncio loop instead of uvloop (`event_loop`); admitd-session adds
  a fresh-MFA admitd session on a privileged route, admitd-jwt the same route with a JWT
  bearer token (its JWKS served on loopback; verification cached);
- admitd-full: the full policy on the privileged session route: device risk and the audit
  log on (a `local` KMS keyring the harness creates in the work dir, the Redis stream and a
  local spool; no dev_mode). The client Envoy sends the session's device ID and a browser's
  user agent, so the risk level is `low`, as for a known user (the probe waits for it);
- admitd-deny: the same config, every request refused by policy and audited (alice on a
  route only admins' certificates may use: identity_not_allowed, which admitd answers 495);
- admitd-mixed: the same config and two client Envoys: mallory floods that refused route
  while alice's admits on the certificate route are measured, after being measured alone
  in the same stack. Reported: admits with the flood / admits alone (the target), and the
  flood's req/s. On a 2-core machine that ratio is not admitd's alone: both loads are
  closed loops sharing the 2 cores with admitd, the three Envoys and wrk, so the flood
  takes its share of the machine whatever admitd does. If a denial costs what an admit
  costs end to end, the admits keep about half (~0.5); (admits+flood)/admits alone near
  1.0 then says a denial costs no more than an admit. 0.8 needs a denial to cost well
  under an admit across the whole path (Envoys included): it is the figure for a machine
  where admitd has cores of its own; on 2 cores, read the other two beside it;
- http-floor, admitd-http, admitd-http-full: Envoy's HTTP ext_authz (`http_service`, the
  edge from admitd.devstack.envoy_http_config, the client certificate in XFCC set by Envoy)
  instead of gRPC: bench/http_floor_server.py (always allow, httptools on uvloop) against
  the gRPC floor, and admitd on `http_listen` on the certificate route and the full policy.

    .venv/bin/python bench/run.py [--duration 15] [--connections 32] [--rounds 1]
                                  [--only admitd-full,...] [--max-streams 4]
                                  [--fixed-rate 1000] [--out bench/results/latest.json]

Closed loop (default, wrk): prints req/s, p50 and p99 per variant, the ratios to the floor
and each target as MET / NOT MET. Fixed rate (`--fixed-rate N`, Debian's h2load --rps; the
variants ceiling, floor, admitd, admitd-full and those named in --only): end-to-end
p50/p90/p99 from h2load's per-request log, and admitd's own handler time p50/p90/p99 from its
`admitd_check_duration_seconds` histogram (metrics_listen on a free loopback port in this
mode only, scraped before and after the measured interval), with the latency targets.
Both modes write every figure as JSON (--out). Exits 0 whatever the numbers (it is a
benchmark); exits 1 only when the harness itself fails, e.g. a variant answers the wrong
status.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from admitd.devstack.envoy_http_config import render_http_edge_config
from admitd.devstack.processes import ProcessGroup, envoy_binary, free_port, wait_for_port
from admitd.pki import DEV_FILES, write_dev_pki

sys.path.insert(0, str(Path(__file__).resolve().parent))
from admitd_setup import (
    DEVICE_ID_HEADER,
    admitd_config,
    bench_policies,
    create_keyring,
    full_policy_sections,
)
from client_envoy import BENCH_USER_AGENT, render_client_config, render_upstream_config
from cpu_usage import (
    NOISY_CORES,
    as_cores,
    authz_us_per_request,
    cpu_snapshot,
    cpu_used,
)
from fixed_rate import QUANTILES, h2load_missing, run_h2load, warm_up
from handler_histogram import Buckets, buckets_from_text, difference, histogram_quantile, scrape
from jwt_setup import BenchJwt, start_jwks
from report import (
    FixedRateMeasurement,
    FixedRateSummary,
    Measurement,
    Summary,
    fixed_rate_figures,
    fixed_rate_verdicts,
    print_fixed_rate_report,
    print_throughput_report,
    summarise,
    summarise_fixed_rate,
    throughput_figures,
    throughput_verdicts,
)
from session_setup import DEVICE_ID, create_fresh_session, start_redis
from targets import Verdict
from variants import DENIED_STATUS, DENY_PATH, PATH, Variant, chosen_variants, with_before
from wrk_load import WrkRun, run_wrk, run_wrk_together

HOST = "127.0.0.1"
FLOOR_SERVER = Path(__file__).resolve().parent / "floor_server.py"
HTTP_FLOOR_SERVER = Path(__file__).resolve().parent / "http_floor_server.py"
MAX_SOCKET_PATH = 100  # bytes; sun_path holds 107 (108 with the NUL), keep a margin


@dataclass(frozen=True, slots=True)
class Settings:
    duration: int
    warmup: int
    connections: int  # wrk connections (h2load: one client per 100 req/s, fixed_rate.py)
    threads: int
    rounds: int
    upstream: str  # "echo" | "envoy"
    fixed_rate: int = 0  # req/s with h2load; 0: closed loop with wrk
    # Another checkout's server/ directory: each admitd variant chosen also runs from it,
    # as "<name>-before", in the same rounds (a before/after comparison); "" = none.
    before_src: str = ""


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    pki: Path
    policies: Path
    redis_url: str = ""
    keyring: Path | None = None  # the full policy's local KMS
    jwt: BenchJwt | None = None


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- files


def prepare_workspace(root: Path) -> Workspace:
    pki = root / "pki"
    write_dev_pki(pki)
    policies = root / "bench-policies.yaml"
    policies.write_text(yaml.safe_dump(bench_policies(), sort_keys=False))
    return Workspace(root=root, pki=pki, policies=policies)


def write_admitd_config(
    variant: Variant,
    ws: Workspace,
    port: int,
    check_socket: Path | None = None,
    metrics_port: int = 0,
) -> Path:
    """admitd on HOST:port, or on `check_socket` (the port then only names the files)."""
    path = ws.root / f"admitd-{port}.yaml"  # tls paths are relative to this file
    listen = f"unix://{check_socket}" if check_socket is not None else f"{HOST}:{port}"
    full = None
    if variant.full_policy:
        assert ws.keyring is not None  # made in run() when a full-policy variant is chosen
        full = full_policy_sections(ws.keyring, ws.root / f"audit-spool-{port}.jsonl")
    config = admitd_config(
        listen,
        ws.policies,
        redis_url=ws.redis_url if variant.needs_redis else "",
        jwt=ws.jwt.config if ws.jwt is not None and variant.jwt else None,
        event_loop=variant.event_loop,
        metrics_listen=f"{HOST}:{metrics_port}" if metrics_port else "",
        full_policy=full,
    )
    if variant.http:  # Checks come over HTTP only (the edge's http_service)
        config["listen"], config["http_listen"] = "", listen
    if variant.workers > 1:
        config["workers"] = variant.workers
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def check_socket_path(ws: Workspace, n: int) -> Path:
    """Where admitd-uds listens: the work dir (tempfile dirs are short), under sun_path's limit."""
    path = ws.root / f"check-{n}.sock"
    if len(os.fsencode(path)) >= MAX_SOCKET_PATH:
        raise BenchError(
            f"{path} is too long for a Unix socket ({MAX_SOCKET_PATH} bytes at most):"
            " set TMPDIR to a shorter directory"
        )
    return path


def client_headers(variant: Variant, ws: Workspace) -> dict[str, str]:
    """What the client Envoy adds: a fresh bearer token, and for the full policy the
    session's device and a browser's user agent (device risk reads both)."""
    headers = {}
    if variant.jwt:
        assert ws.jwt is not None
        headers["authorization"] = f"Bearer {ws.jwt.fresh_token()}"
    elif variant.session:
        headers["authorization"] = f"Bearer {create_fresh_session(ws.redis_url)}"
    if variant.full_policy:
        headers[DEVICE_ID_HEADER] = DEVICE_ID
        headers["user-agent"] = BENCH_USER_AGENT
    return headers


# ---------------------------------------------------------------- processes


def envoy_argv(config: Path, base_id: int) -> list[str]:
    return [
        envoy_binary(),
        "-c",
        str(config),
        "--concurrency",
        "1",
        "--base-id",
        str(base_id),
        "--log-level",
        "warn",
    ]


def authz_argv(
    variant: Variant,
    ws: Workspace,
    port: int,
    check_socket: Path | None = None,
    metrics_port: int = 0,
) -> list[str]:
    if variant.authz == "floor":
        return [sys.executable, str(FLOOR_SERVER), "--port", str(port)]
    if variant.authz == "http-floor":
        return [sys.executable, str(HTTP_FLOOR_SERVER), "--port", str(port)]
    config = write_admitd_config(variant, ws, port, check_socket, metrics_port)
    argv = [sys.executable, "-m", "admitd", "serve", "--config", str(config)]
    # `env` execs python, so the pid stays the one the CPU accounting reads.
    return ["env", f"PYTHONPATH={variant.src}", *argv] if variant.src else argv


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until a Unix socket at `path` accepts a connection (the file alone is not enough)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before listening on {path}"
            )
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            try:
                sock.connect(str(path))
            except OSError:  # not there yet, or there but not listening (refused)
                pass
            else:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {path} after {timeout}s")


@dataclass(frozen=True, slots=True)
class Stack:
    client_port: int
    edge_admin_port: int
    pids: dict[str, int]
    flood_port: int = 0  # admitd-mixed: mallory's client Envoy
    metrics_port: int = 0  # fixed-rate mode: admitd's metrics_listen


@contextmanager
def variant_stack(
    variant: Variant,
    ws: Workspace,
    upstream: tuple[int, int],
    log_dir: Path,
    *,
    metrics: bool = False,
) -> Iterator[Stack]:
    """Start authz (unless ceiling), the edge and the client Envoy(s); stop them on exit."""
    upstream_port, upstream_pid = upstream
    log_dir.mkdir(parents=True, exist_ok=True)
    with ProcessGroup(log_dir) as group:
        pids = {"upstream": upstream_pid}
        authz_port = free_port()
        check_socket = check_socket_path(ws, authz_port) if variant.uds else None
        # Workers: /readyz says when all of them serve (the port opens with the first).
        wants_metrics = metrics or variant.workers > 1
        metrics_port = free_port() if wants_metrics and variant.authz == "admitd" else 0
        if variant.authz != "none":
            argv = authz_argv(variant, ws, authz_port, check_socket, metrics_port)
            authz = group.start("authz", argv)
            if check_socket is not None:
                wait_for_socket(check_socket, authz, timeout=30)
            else:
                wait_for_port(authz_port, process=authz, timeout=30)
            if metrics_port:
                wait_for_port(metrics_port, process=authz, timeout=30)
            if variant.workers > 1:
                wait_for_workers(metrics_port, variant.workers, timeout=60)
            pids["authz"] = authz.pid
        edge_port, admin_port = free_port(), free_port()
        ports = (edge_port, admin_port, authz_port, upstream_port)
        edge_yaml = log_dir / "edge.yaml"
        render = render_http_edge_config if variant.http else render_edge_config
        edge_yaml.write_text(render(_edge_settings(variant, ws, ports, check_socket)))
        edge_process = group.start("edge", envoy_argv(edge_yaml, base_id=edge_port))
        wait_for_port(edge_port, process=edge_process, timeout=30)
        pids["edge"] = edge_process.pid
        headers = client_headers(variant, ws)
        client_port = _start_client(group, "client", edge_port, ws, "alice", headers, pids)
        flood_port = 0
        if variant.mixed:
            flood_port = _start_client(
                group, "flood-client", edge_port, ws, "mallory", headers, pids
            )
        yield Stack(client_port, admin_port, pids, flood_port, metrics_port)


def _start_client(
    group: ProcessGroup,
    name: str,
    edge_port: int,
    ws: Workspace,
    user: str,
    headers: dict[str, str],
    pids: dict[str, int],
) -> int:
    port = free_port()
    config = group.log_dir / f"{name}.yaml"
    config.write_text(render_client_config(port, edge_port, ws.pki, user=user, headers=headers))
    process = group.start(name, envoy_argv(config, base_id=port))
    wait_for_port(port, process=process, timeout=30)
    pids[name] = process.pid
    return port


def _edge_settings(
    variant: Variant,
    ws: Workspace,
    ports: tuple[int, int, int, int],
    check_socket: Path | None = None,
) -> EdgeSettings:
    edge_port, admin_port, authz_port, upstream_port = ports
    return EdgeSettings(
        listen_port=edge_port,
        admin_port=admin_port,
        authz_port=authz_port,
        upstream_port=upstream_port,
        server_cert=ws.pki / DEV_FILES["server_cert"],
        server_key=ws.pki / DEV_FILES["server_key"],
        trust_bundle=ws.pki / DEV_FILES["trust"],
        ext_authz=variant.authz != "none",
        authz_max_streams=variant.max_streams,
        authz_socket=check_socket,
        spread_over_workers=variant.spread,
    )


def wait_for_workers(metrics_port: int, workers: int, timeout: float) -> None:
    """Until admitd's /readyz reports every worker ready."""
    wanted = f"{workers} of {workers} workers ready".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{HOST}:{metrics_port}/readyz", timeout=2) as r:
                if wanted in r.read():
                    return
        except OSError:  # not ready yet (503 is an HTTPError, an OSError)
            pass
        time.sleep(0.2)
    raise BenchError(f"admitd: not all {workers} workers ready after {timeout:.0f}s")


# ---------------------------------------------------------------- checks


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def probe(variant: Variant, stack: Stack, upstream: str) -> None:
    """One request through the whole path must answer what the variant measures (a
    benchmark of unexpected 403s is worthless); the full policy's risk must be `low`."""
    if variant.mixed:
        _expect(variant, stack.client_port, PATH, 200, upstream)
        _expect(variant, stack.flood_port, DENY_PATH, DENIED_STATUS, upstream)
        return
    answer = _expect(variant, stack.client_port, variant.path, variant.expected_status, upstream)
    if variant.full_policy and variant.has_user:
        _wait_for_low_risk(variant, stack.client_port, answer)


def _expect(variant: Variant, port: int, path: str, status: int, upstream: str) -> Answer:
    url = f"http://{HOST}:{port}{path}"
    answer = _get(url)
    deadline = time.monotonic() + 5
    while answer.status != status and time.monotonic() < deadline:  # clusters still warming
        time.sleep(0.2)
        answer = _get(url)
    if answer.status != status:
        raise BenchError(
            f"{variant.name}: GET {path} answered {answer.status}, not {status}:"
            f" {answer.body[:300]!r}"
        )
    expected = b"x-admitd-user" if variant.has_user else b"x-admitd-principal"
    admitted = status == 200 and variant.authz == "admitd" and upstream == "echo"
    if admitted and expected not in answer.body:
        raise BenchError(f"{variant.name}: 200 but the upstream saw no {expected.decode()}")
    return answer


def _wait_for_low_risk(variant: Variant, port: int, first: Answer) -> None:
    """The first admitted sighting makes the device known (recorded off the hot path), so
    the level drops from `medium` (new device) to `low` within moments."""
    answer, deadline = first, time.monotonic() + 5
    while answer.headers.get("x-admitd-risk-level") != "low" and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = _get(f"http://{HOST}:{port}{variant.path}")
    level = answer.headers.get("x-admitd-risk-level")
    if answer.status != 200 or level != "low":
        signals = answer.headers.get("x-admitd-risk-signals", "")
        raise BenchError(
            f"{variant.name}: risk level {level!r} (signals {signals!r}, status"
            f" {answer.status}), not 'low': device risk is off or the client looks new"
        )


def _get(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return Answer(int(response.status), _lower(response.headers), bytes(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(int(error.code), _lower(error.headers), bytes(error.read()))
    except OSError as error:
        return Answer(0, {}, str(error).encode())


def _lower(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


_EDGE_STATS = (
    "http.edge.downstream_cx_total",
    "http.edge.downstream_rq_total",
    "cluster.admitd.upstream_cx_total",
    "cluster.admitd.upstream_rq_total",
    "cluster.upstream.upstream_cx_total",
)


def edge_stats(admin_port: int) -> dict[str, int]:
    """A few counters that show whether connections were reused and how many Envoy opened."""
    body = _get(f"http://{HOST}:{admin_port}/stats?filter=_(cx|rq)_total$").body
    counters = dict(line.split(": ", 1) for line in body.decode().splitlines() if ": " in line)
    return {name: int(counters[name]) for name in _EDGE_STATS if name in counters}


# ---------------------------------------------------------------- closed loop (wrk)


def _wrk(port: int, path: str, seconds: int, settings: Settings) -> WrkRun:
    return WrkRun(port, path, seconds, settings.connections, settings.threads)


def measure(variant: Variant, stack: Stack, settings: Settings) -> Measurement:
    port, path = stack.client_port, variant.path
    run_wrk(_wrk(port, path, settings.warmup, settings))
    before = cpu_snapshot(stack.pids, "wrk")
    started = time.monotonic()
    result = run_wrk(_wrk(port, path, settings.duration, settings))
    wall = time.monotonic() - started
    used = cpu_used(before, cpu_snapshot(stack.pids, "wrk"))
    # wrk counts 4xx/5xx as non-2xx; for a denial variant the 2xx ones are the surprise.
    unexpected = result.requests - result.non_2xx if variant.denied else result.non_2xx
    return Measurement(
        variant=variant.name,
        wrk=result,
        unexpected=unexpected,
        cpu_cores=as_cores(used, wall),
        authz_cpu_us_per_request=authz_us_per_request(used, result.requests),
        edge_stats=edge_stats(stack.edge_admin_port),
    )


def measure_mixed(variant: Variant, stack: Stack, settings: Settings) -> Measurement:
    """Alice's admits alone, then again while mallory floods the refused route."""
    admits = _wrk(stack.client_port, PATH, settings.duration, settings)
    flood = _wrk(stack.flood_port, DENY_PATH, settings.duration, settings)
    warm = settings.warmup
    run_wrk_together([replace(admits, seconds=warm), replace(flood, seconds=warm)])
    alone = run_wrk(admits)
    before = cpu_snapshot(stack.pids, "wrk")
    started = time.monotonic()
    with_flood, flooding = run_wrk_together([admits, flood])
    wall = time.monotonic() - started
    used = cpu_used(before, cpu_snapshot(stack.pids, "wrk"))
    return Measurement(
        variant=variant.name,
        wrk=with_flood,
        unexpected=with_flood.non_2xx + flooding.requests - flooding.non_2xx,
        cpu_cores=as_cores(used, wall),
        authz_cpu_us_per_request=authz_us_per_request(
            used, with_flood.requests + flooding.requests
        ),
        edge_stats=edge_stats(stack.edge_admin_port),
        concurrent={"admits_alone": alone, "flood": flooding},
    )


# ---------------------------------------------------------------- fixed rate (h2load)


def measure_fixed_rate(
    variant: Variant, stack: Stack, settings: Settings, log_dir: Path
) -> FixedRateMeasurement:
    url = f"http://{HOST}:{stack.client_port}{variant.path}"
    rate = settings.fixed_rate
    warm_up(url, rate=rate, duration=settings.warmup)
    histogram_before = _handler_buckets(stack)
    before = cpu_snapshot(stack.pids, "h2load")
    started = time.monotonic()
    result = run_h2load(
        url,
        rate=rate,
        duration=settings.duration,
        expected_status=variant.expected_status,
        log_file=log_dir / "h2load.log",
    )
    wall = time.monotonic() - started
    used = cpu_used(before, cpu_snapshot(stack.pids, "h2load"))
    observed = difference(_handler_buckets(stack, keep=log_dir / "metrics.txt"), histogram_before)
    return FixedRateMeasurement(
        variant=variant.name,
        load=result,
        handler_us=_handler_quantiles_us(observed) if stack.metrics_port else {},
        handler_observations=int(observed[-1][1]) if observed else 0,
        cpu_cores=as_cores(used, wall),
        authz_cpu_us_per_request=authz_us_per_request(used, result.requests),
        edge_stats=edge_stats(stack.edge_admin_port),
    )


def _handler_buckets(stack: Stack, keep: Path | None = None) -> Buckets:
    """admitd's Check histogram now (empty without admitd); `keep` saves the whole scrape
    (audit and risk counters too) beside the variant's logs."""
    if not stack.metrics_port:
        return ()
    text = scrape(f"http://{HOST}:{stack.metrics_port}/metrics")
    if keep is not None:
        keep.write_text(text)
    return buckets_from_text(text)


def _handler_quantiles_us(buckets: Buckets) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for q in QUANTILES:
        seconds = histogram_quantile(q, buckets)
        out[f"p{round(q * 100)}"] = None if seconds is None else round(seconds * 1e6, 1)
    return out


# ---------------------------------------------------------------- one run


def _print_run(m: Measurement | FixedRateMeasurement) -> None:
    cores = " ".join(f"{name}={value}" for name, value in m.cpu_cores.items())
    per_check = (
        f" authz {m.authz_cpu_us_per_request} us CPU/req"
        if m.authz_cpu_us_per_request is not None
        else ""
    )
    if isinstance(m, Measurement):
        print(
            f"  {m.variant:<16} {m.wrk.requests_per_s:>9.1f} req/s  p50 {m.wrk.p50_ms:.2f} ms"
            f"  p99 {m.wrk.p99_ms:.2f} ms  non-2xx {m.wrk.non_2xx}  unexpected {m.unexpected}"
            f"  cores: {cores}{per_check}",
            flush=True,
        )
        for name, result in m.concurrent.items():
            print(f"  {'':<16} {name}: {result.requests_per_s:.1f} req/s", flush=True)
    else:
        e2e = " ".join(f"{k} {v} ms" for k, v in m.load.latency_ms.items())
        handler = " ".join(f"{k} {v} us" for k, v in m.handler_us.items())
        print(
            f"  {m.variant:<16} {m.load.achieved_rps:>7.1f}/{m.load.rate} req/s  e2e {e2e}"
            f"  handler {handler or '-'} ({m.handler_observations} Checks)"
            f"  failed {m.load.failed}  unexpected {m.load.unexpected}"
            f"  cores: {cores}{per_check}",
            flush=True,
        )
    print(f"  {'':<16} edge: {m.edge_stats}", flush=True)
    if m.cpu_cores["others"] > NOISY_CORES:
        print(f"  {'':<16} NOTE: other processes used {m.cpu_cores['others']} cores meanwhile")


def run_variant(
    variant: Variant,
    ws: Workspace,
    upstream: tuple[int, int],
    settings: Settings,
    log_dir: Path,
) -> Measurement | FixedRateMeasurement:
    fixed = settings.fixed_rate > 0
    with variant_stack(variant, ws, upstream, log_dir, metrics=fixed) as stack:
        probe(variant, stack, settings.upstream)
        measurement: Measurement | FixedRateMeasurement
        if fixed:
            measurement = measure_fixed_rate(variant, stack, settings, log_dir)
        elif variant.mixed:
            measurement = measure_mixed(variant, stack, settings)
        else:
            measurement = measure(variant, stack, settings)
    _print_run(measurement)
    return measurement


def start_upstream(group: ProcessGroup, kind: str, work: Path) -> tuple[int, int]:
    """The upstream shared by all variants: `echo` (Python) or `envoy` (direct_response)."""
    port = free_port()
    if kind == "echo":
        argv = [sys.executable, "-m", "admitd.devstack.echo", "--port", str(port)]
    else:
        config = work / "upstream.yaml"
        config.write_text(render_upstream_config(port))
        argv = envoy_argv(config, base_id=port)
    process = group.start("upstream", argv)
    wait_for_port(port, process=process, timeout=30)
    return port, process.pid


def run(
    settings: Settings, chosen: list[Variant], work: Path
) -> dict[str, list[Measurement | FixedRateMeasurement]]:
    ws = prepare_workspace(work)
    runs: dict[str, list[Measurement | FixedRateMeasurement]] = {v.name: [] for v in chosen}
    with ProcessGroup(work / "logs") as group:
        upstream = start_upstream(group, settings.upstream, work)
        if any(v.needs_redis for v in chosen):
            ws = replace(ws, redis_url=start_redis(group, work))
        if any(v.full_policy for v in chosen):
            ws = replace(ws, keyring=create_keyring(work))
        if any(v.jwt for v in chosen):
            ws = replace(ws, jwt=start_jwks(group, work))
        mode = f"fixed rate {settings.fixed_rate} req/s" if settings.fixed_rate else "wrk"
        for round_no in range(1, settings.rounds + 1):
            print(
                f"round {round_no}/{settings.rounds} ({mode}, upstream: {settings.upstream})",
                flush=True,
            )
            for variant in chosen:
                log_dir = work / "logs" / f"{variant.name}-{round_no}"
                runs[variant.name].append(run_variant(variant, ws, upstream, settings, log_dir))
    return runs


# ---------------------------------------------------------------- report and main


def report(
    settings: Settings, runs: dict[str, list[Measurement | FixedRateMeasurement]]
) -> dict[str, Any]:
    """Print the table, figures and verdicts; return the JSON document's variable part."""
    if settings.fixed_rate:
        fixed = {
            name: summarise_fixed_rate(name, [m for m in ms if isinstance(m, FixedRateMeasurement)])
            for name, ms in runs.items()
        }
        figures: dict[str, float | None] = dict(fixed_rate_figures(fixed))
        print_fixed_rate_report(fixed, figures)
        return _document(fixed, figures, fixed_rate_verdicts(figures))
    closed = {
        name: summarise(name, [m for m in ms if isinstance(m, Measurement)])
        for name, ms in runs.items()
    }
    ratios = throughput_figures(closed)
    print_throughput_report(closed, ratios)
    return _document(closed, dict(ratios), throughput_verdicts(ratios))


def _document(
    summaries: dict[str, Summary] | dict[str, FixedRateSummary],
    figures: dict[str, float | None],
    verdicts: list[Verdict],
) -> dict[str, Any]:
    return {
        "variants": {name: asdict(s) for name, s in summaries.items()},
        "figures": figures,
        "targets": [
            {
                "target": v.target.text,
                "figure": v.target.figure,
                "bound": v.target.bound,
                "value": v.value,
                "met": v.met,
            }
            for v in verdicts
        ],
    }


def write_json(out: Path, settings: Settings, body: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "envoy": envoy_binary()},
        "mode": "fixed-rate" if settings.fixed_rate else "closed-loop",
        "settings": asdict(settings),
        "paths": {"certificate": PATH, "denied": DENY_PATH},
        **body,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per variant")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per variant")
    parser.add_argument(
        "--connections", type=int, default=32, help="wrk connections (not h2load's)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=1, help="repeat all variants; report medians")
    parser.add_argument(
        "--max-streams",
        type=int,
        action="append",
        default=[],
        help="also run admitd with the authz cluster's max_concurrent_streams capped (repeatable)",
    )
    parser.add_argument(
        "--upstream",
        choices=("echo", "envoy"),
        default="echo",
        help="echo: admitd.devstack.echo (Python); envoy: Envoy answering 200 itself",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated variants to run besides the base ones (ceiling, floor, admitd;"
        " with --fixed-rate also admitd-full), e.g. admitd-uds; default: all (wrk), the base"
        " ones (--fixed-rate)",
    )
    parser.add_argument(
        "--fixed-rate",
        type=int,
        default=0,
        metavar="RPS",
        help="h2load at RPS req/s instead of wrk: end-to-end and handler-time quantiles",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    parser.add_argument(
        "--before-src",
        default="",
        help="also run each chosen admitd variant from this server/ directory (e.g. a"
        " `git archive` of an older commit) as <name>-before, in the same rounds",
    )
    args = parser.parse_args(argv)
    if args.fixed_rate < 0:
        parser.error("--fixed-rate must be a positive number of requests per second")
    return args


def _missing_tool(fixed_rate: bool) -> str | None:
    if fixed_rate and h2load_missing():
        return "h2load not found (apt-get install nghttp2-client)"
    if not fixed_rate and shutil.which("wrk") is None:
        return "wrk not found (apt-get install wrk)"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = _missing_tool(args.fixed_rate > 0)
    if missing:
        print(missing, file=sys.stderr)
        return 1
    settings = Settings(
        args.duration,
        args.warmup,
        args.connections,
        args.threads,
        args.rounds,
        args.upstream,
        args.fixed_rate,
        args.before_src,
    )
    chosen = chosen_variants(args.max_streams, args.only, fixed_rate=settings.fixed_rate > 0)
    if settings.before_src:
        chosen = with_before(chosen, settings.before_src)
    work = Path(tempfile.mkdtemp(prefix="admitd-bench-"))
    try:
        runs = run(settings, chosen, work)
    except (BenchError, OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"\nbenchmark failed: {error}\nlogs and configs kept in {work}", file=sys.stderr)
        return 1
    write_json(args.out, settings, report(settings, runs))
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

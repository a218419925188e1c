"""Benchmark admitd through the real Envoy: ceiling, floor and admitd in one run.

    wrk -> client Envoy (plain HTTP in, mTLS out with alice's certificate)
        -> edge Envoy (mTLS termination [+ ext_authz -> Check server]) -> echo upstream

Three variants share that path; only the edge differs:

- ceiling: the edge without ext_authz (what Envoy + upstream cost alone),
- floor:   the edge + bench/floor_server.py, an always-allow grpc.aio Check server
           (what Python gRPC itself costs),
- admitd:  the edge + `python -m admitd serve` deciding on the client certificate, Check
  over loopback TCP; admitd-uds the same with Check over a Unix socket in the work dir
  (`listen: unix://...`, the edge's admitd cluster a `pipe` address), so the two rows
  compare req/s, p50 and p99 of UDS and TCP; admitd-asyncio is admitd on the standard
  asyncio loop instead of uvloop (`event_loop`); admitd-session adds a fresh-MFA admitd
  session on a privileged route, admitd-jwt the same route with a JWT bearer token (its
  JWKS served on loopback; verification cached).

    .venv/bin/python bench/run.py [--duration 15] [--connections 32] [--rounds 1]
                                  [--max-streams 4] [--out bench/results/latest.json]

Prints requests/s, p50 and p99 per variant, the ratios admitd/ceiling, admitd/floor and
admitd-uds/admitd, and writes them as JSON. Exits 0 whatever the numbers (it is a
benchmark); exits 1 only when the harness itself fails, e.g. a variant does not answer 200.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from admitd.devstack.envoy_config import EdgeSettings, render_edge_config
from admitd.devstack.processes import ProcessGroup, envoy_binary, free_port, wait_for_port
from admitd.pki import DEV_FILES, write_dev_pki

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jwt_setup import BenchJwt, start_jwks
from session_setup import SESSION_PATH, SESSION_ROUTE, create_fresh_session, start_redis

HOST = "127.0.0.1"
PATH = "/api/bench"
TARGET_FLOOR_RATIO = 0.85
SESSION_TARGET = 0.8  # privileged route with a fresh session (sessions issue)
NOISY_CORES = 0.2  # CPU used by processes outside the benchmark that makes a run suspect
FLOOR_SERVER = Path(__file__).resolve().parent / "floor_server.py"
_TYPE = "type.googleapis.com/envoy."
_CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_SOCKET_PATH = 100  # bytes; sun_path holds 107 (108 with the NUL), keep a margin


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    authz: str  # "none" | "floor" | "admitd"
    max_streams: int = 0  # authz cluster max_concurrent_streams; 0 = Envoy's default
    session: bool = False  # the privileged route with a fresh MFA session (bearer token)
    jwt: bool = False  # the privileged route with a fresh-MFA JWT bearer token
    uds: bool = False  # Check over a Unix socket in the work dir instead of loopback TCP
    event_loop: str = "auto"  # admitd's `event_loop`: auto is uvloop when installed

    @property
    def path(self) -> str:
        return SESSION_PATH if self.has_user else PATH

    @property
    def has_user(self) -> bool:
        return self.session or self.jwt


@dataclass(frozen=True, slots=True)
class Settings:
    duration: int
    warmup: int
    connections: int
    threads: int
    rounds: int
    upstream: str  # "echo" | "envoy"


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


@dataclass(slots=True)
class Measurement:
    variant: str
    wrk: WrkResult
    cpu_cores: dict[str, float]  # process (or wrk, machine) -> cores used while measured
    authz_cpu_us_per_request: float | None
    edge_stats: dict[str, int]  # edge Envoy counters after the run (connections, requests)


@dataclass(slots=True)
class Summary:
    variant: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    runs: list[Measurement] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path
    pki: Path
    policies: Path
    redis_url: str = ""
    session_token: str = ""
    jwt: BenchJwt | None = None


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- files


def prepare_workspace(root: Path) -> Workspace:
    pki = root / "pki"
    write_dev_pki(pki)
    policies = root / "bench-policies.yaml"
    policies.write_text(yaml.safe_dump(_bench_policies(), sort_keys=False))
    return Workspace(root=root, pki=pki, policies=policies)


def _bench_policies() -> dict[str, Any]:
    return {
        "unmatched": "deny",
        "require_https": True,
        "routes": [
            {
                "name": "api",
                "match": {"path_prefix": "/api/"},
                "identities": {"spiffe": ["spiffe://admitd.dev/user/*"]},
            },
            SESSION_ROUTE,
        ],
    }


def _admitd_config(
    listen: str, policies: Path, redis_url: str, jwt: BenchJwt | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "listen": listen,
        "metrics_listen": "",
        "policies": str(policies),
        "log_level": "info",
        "tls": {
            "trust_bundle": f"pki/{DEV_FILES['trust']}",
            "crl_files": [f"pki/{DEV_FILES['crl']}"],
            "deny_list": f"pki/{DEV_FILES['deny_list']}",
        },
    }
    if redis_url:
        config["redis_url"] = redis_url
    if jwt is not None:
        config["jwt"] = jwt.config
    return config


def write_admitd_config(
    ws: Workspace, port: int, check_socket: Path | None = None, event_loop: str = "auto"
) -> Path:
    """admitd on HOST:port, or on `check_socket` (the port then only names the files)."""
    path = ws.root / f"admitd-{port}.yaml"  # tls paths are relative to this file
    listen = f"unix://{check_socket}" if check_socket is not None else f"{HOST}:{port}"
    config = _admitd_config(listen, ws.policies, ws.redis_url, ws.jwt)
    config["event_loop"] = event_loop
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


def render_client_config(listen_port: int, edge_port: int, pki: Path, bearer: str = "") -> str:
    """A plain-HTTP listener that forwards to the edge over mTLS as alice (and her session)."""
    route: dict[str, Any] = {"match": {"prefix": "/"}, "route": {"cluster": "edge"}}
    if bearer:
        header = {"key": "authorization", "value": f"Bearer {bearer}"}
        route["request_headers_to_add"] = [
            {"header": header, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        ]
    return _static_envoy(
        _plain_listener("client", listen_port, route), [_client_edge_cluster(edge_port, pki)]
    )


def render_upstream_config(listen_port: int) -> str:
    """An upstream that costs (almost) nothing: Envoy answering 200 itself."""
    body = {"inline_string": '{"ok":true}'}
    route = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": body}}
    return _static_envoy(_plain_listener("upstream", listen_port, route), [])


def _static_envoy(listener: dict[str, Any], clusters: list[dict[str, Any]]) -> str:
    resources = {"listeners": [listener], "clusters": clusters}
    return yaml.safe_dump({"static_resources": resources}, sort_keys=False)


def _plain_listener(name: str, port: int, route: dict[str, Any]) -> dict[str, Any]:
    hcm = "extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    router = {
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": _TYPE + "extensions.filters.http.router.v3.Router"},
    }
    manager = {
        "@type": _TYPE + hcm,
        "stat_prefix": name,
        "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}]},
        "http_filters": [router],
    }
    return {
        "name": name,
        "address": _address(port),
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }


def _address(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": HOST, "port_value": port}}


def _client_edge_cluster(edge_port: int, pki: Path) -> dict[str, Any]:
    alice = {
        "certificate_chain": {"filename": str(pki / "alice.pem")},
        "private_key": {"filename": str(pki / "alice.key")},
    }
    tls = {
        "@type": _TYPE + "extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": "localhost",
        "common_tls_context": {
            "tls_certificates": [alice],
            "validation_context": {"trusted_ca": {"filename": str(pki / "root-ca.pem")}},
        },
    }
    endpoint = {"endpoint": {"address": _address(edge_port)}}
    return {
        "name": "edge",
        "type": "STATIC",
        "connect_timeout": "0.25s",
        "load_assignment": {"cluster_name": "edge", "endpoints": [{"lb_endpoints": [endpoint]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": tls},
    }


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
    variant: Variant, ws: Workspace, port: int, check_socket: Path | None = None
) -> list[str]:
    if variant.authz == "floor":
        return [sys.executable, str(FLOOR_SERVER), "--port", str(port)]
    config = write_admitd_config(ws, port, check_socket, variant.event_loop)
    return [sys.executable, "-m", "admitd", "serve", "--config", str(config)]


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


@contextmanager
def variant_stack(
    variant: Variant, ws: Workspace, upstream_port: int, upstream_pid: int, log_dir: Path
) -> Iterator[Stack]:
    """Start authz (unless ceiling), the edge and the client Envoy; stop them on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with ProcessGroup(log_dir) as group:
        pids = {"upstream": upstream_pid}
        authz_port = free_port()
        check_socket = check_socket_path(ws, authz_port) if variant.uds else None
        if variant.authz != "none":
            authz = group.start("authz", authz_argv(variant, ws, authz_port, check_socket))
            if check_socket is not None:
                wait_for_socket(check_socket, authz, timeout=30)
            else:
                wait_for_port(authz_port, process=authz, timeout=30)
            pids["authz"] = authz.pid
        edge_port, admin_port = free_port(), free_port()
        ports = (edge_port, admin_port, authz_port, upstream_port)
        edge = _edge_settings(variant, ws, ports, check_socket)
        edge_yaml = log_dir / "edge.yaml"
        edge_yaml.write_text(render_edge_config(edge))
        edge_process = group.start("edge", envoy_argv(edge_yaml, base_id=edge_port))
        wait_for_port(edge_port, process=edge_process, timeout=30)
        pids["edge"] = edge_process.pid
        client_port = free_port()
        client_yaml = log_dir / "client.yaml"
        bearer = _bearer(variant, ws)
        client_yaml.write_text(render_client_config(client_port, edge_port, ws.pki, bearer))
        client = group.start("client", envoy_argv(client_yaml, base_id=client_port))
        wait_for_port(client_port, process=client, timeout=30)
        pids["client"] = client.pid
        yield Stack(client_port=client_port, edge_admin_port=admin_port, pids=pids)


def _bearer(variant: Variant, ws: Workspace) -> str:
    if variant.jwt:
        assert ws.jwt is not None
        return ws.jwt.token
    return ws.session_token if variant.session else ""


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
    )


# ---------------------------------------------------------------- checks and load


def probe(variant: Variant, port: int, upstream: str) -> None:
    """One request through the whole path must answer 200 (a benchmark of 403s is worthless)."""
    url = f"http://{HOST}:{port}{variant.path}"
    status, body = _get(url)
    deadline = time.monotonic() + 5
    while status != 200 and time.monotonic() < deadline:  # Envoy may still be warming clusters
        time.sleep(0.2)
        status, body = _get(url)
    if status != 200:
        raise BenchError(
            f"{variant.name}: GET {variant.path} answered {status}, not 200: {body[:300]!r}"
        )
    expected = b"x-admitd-user" if variant.has_user else b"x-admitd-principal"
    if variant.authz == "admitd" and upstream == "echo" and expected not in body:
        raise BenchError(f"{variant.name}: 200 but the upstream saw no {expected.decode()}")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
    except OSError as error:
        return 0, str(error).encode()


def run_wrk(port: int, duration: int, settings: Settings, path: str = PATH) -> WrkResult:
    argv = [
        "wrk",
        f"-t{settings.threads}",
        f"-c{settings.connections}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "--latency",
        f"http://{HOST}:{port}{path}",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(text: str) -> WrkResult:
    return WrkResult(
        requests_per_s=float(_search(r"Requests/sec:\s+([\d.]+)", text)),
        p50_ms=_latency_ms("50", text),
        p99_ms=_latency_ms("99", text),
        requests=int(_search(r"(\d+) requests in", text)),
        non_2xx=int(_search(r"Non-2xx or 3xx responses:\s+(\d+)", text, default="0")),
        socket_errors=_socket_errors(text),
    )


def _latency_ms(percentile: str, text: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    if not match:
        raise BenchError(f"no {percentile}% latency in wrk output:\n{text}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def _socket_errors(text: str) -> int:
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return sum(int(n) for n in match.groups()) if match else 0


def _search(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match:
        return match.group(1)
    if default is not None:
        return default
    raise BenchError(f"{pattern!r} not found in wrk output:\n{text}")


_EDGE_STATS = (
    "http.edge.downstream_cx_total",
    "http.edge.downstream_rq_total",
    "cluster.admitd.upstream_cx_total",
    "cluster.admitd.upstream_rq_total",
    "cluster.upstream.upstream_cx_total",
)


def edge_stats(admin_port: int) -> dict[str, int]:
    """A few counters that show whether connections were reused and how many Envoy opened."""
    _, body = _get(f"http://{HOST}:{admin_port}/stats?filter=_(cx|rq)_total$")
    counters = dict(line.split(": ", 1) for line in body.decode().splitlines() if ": " in line)
    return {name: int(counters[name]) for name in _EDGE_STATS if name in counters}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (every process, ours or not)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK  # minus idle and iowait


def _cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    snapshot = {name: cpu_seconds(pid) for name, pid in pids.items()}
    snapshot["wrk"] = children.ru_utime + children.ru_stime
    snapshot["machine"] = machine_busy_seconds()
    return snapshot


def measure(variant: Variant, stack: Stack, settings: Settings) -> Measurement:
    run_wrk(stack.client_port, settings.warmup, settings, variant.path)
    before = _cpu_snapshot(stack.pids)
    started = time.monotonic()
    result = run_wrk(stack.client_port, settings.duration, settings, variant.path)
    wall = time.monotonic() - started
    used = {name: seconds - before[name] for name, seconds in _cpu_snapshot(stack.pids).items()}
    authz_us = (
        used["authz"] / result.requests * 1e6 if "authz" in used and result.requests else None
    )
    ours = sum(seconds for name, seconds in used.items() if name != "machine")
    used["others"] = max(0.0, used["machine"] - ours)  # processes not in this benchmark
    return Measurement(
        variant=variant.name,
        wrk=result,
        cpu_cores={name: round(seconds / wall, 2) for name, seconds in used.items()},
        authz_cpu_us_per_request=round(authz_us, 1) if authz_us is not None else None,
        edge_stats=edge_stats(stack.edge_admin_port),
    )


def run_variant(
    variant: Variant,
    ws: Workspace,
    upstream: tuple[int, int],
    settings: Settings,
    log_dir: Path,
) -> Measurement:
    port, pid = upstream
    with variant_stack(variant, ws, port, pid, log_dir) as stack:
        probe(variant, stack.client_port, settings.upstream)
        measurement = measure(variant, stack, settings)
    _print_run(measurement)
    return measurement


# ---------------------------------------------------------------- report


def summarise(name: str, runs: list[Measurement]) -> Summary:
    return Summary(
        variant=name,
        requests_per_s=round(statistics.median(r.wrk.requests_per_s for r in runs), 1),
        p50_ms=round(statistics.median(r.wrk.p50_ms for r in runs), 3),
        p99_ms=round(statistics.median(r.wrk.p99_ms for r in runs), 3),
        non_2xx=sum(r.wrk.non_2xx for r in runs),
        runs=runs,
    )


def ratios(summaries: dict[str, Summary]) -> dict[str, float]:
    admitd = summaries["admitd"].requests_per_s
    out = {
        "admitd/ceiling": admitd / summaries["ceiling"].requests_per_s,
        "admitd/floor": admitd / summaries["floor"].requests_per_s,
        "floor/ceiling": summaries["floor"].requests_per_s / summaries["ceiling"].requests_per_s,
    }
    for name, summary in summaries.items():
        if name.startswith("admitd-"):
            out[f"{name}/floor"] = summary.requests_per_s / summaries["floor"].requests_per_s
    if "admitd-uds" in summaries:  # Check over a Unix socket against loopback TCP
        out["admitd-uds/admitd"] = summaries["admitd-uds"].requests_per_s / admitd
    if "admitd-asyncio" in summaries:  # uvloop (admitd's default when installed) vs asyncio
        out["admitd/admitd-asyncio"] = admitd / summaries["admitd-asyncio"].requests_per_s
    return {key: round(value, 3) for key, value in out.items()}


def _print_run(m: Measurement) -> None:
    cores = " ".join(f"{name}={value}" for name, value in m.cpu_cores.items())
    per_check = (
        f" authz {m.authz_cpu_us_per_request} us CPU/req"
        if m.authz_cpu_us_per_request is not None
        else ""
    )
    print(
        f"  {m.variant:<14} {m.wrk.requests_per_s:>9.1f} req/s  p50 {m.wrk.p50_ms:.2f} ms"
        f"  p99 {m.wrk.p99_ms:.2f} ms  non-2xx {m.wrk.non_2xx}  cores: {cores}{per_check}",
        flush=True,
    )
    print(f"  {'':<14} edge: {m.edge_stats}", flush=True)
    if m.cpu_cores["others"] > NOISY_CORES:
        print(f"  {'':<14} NOTE: other processes used {m.cpu_cores['others']} cores meanwhile")


def print_report(summaries: dict[str, Summary], ratio: dict[str, float]) -> None:
    print()
    print(f"{'variant':<14} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for s in summaries.values():
        print(
            f"{s.variant:<14} {s.requests_per_s:>10.1f} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f}"
            f" {s.non_2xx:>8}"
        )
    print()
    for key, value in ratio.items():
        print(f"{key:<22} {value:.3f}")
    met = ratio["admitd/floor"] >= TARGET_FLOOR_RATIO
    verdict = "MET" if met else "NOT MET"
    print(f"\ntarget admitd/floor >= {TARGET_FLOOR_RATIO}: {verdict} ({ratio['admitd/floor']:.3f})")
    if "admitd-session/floor" in ratio:
        session = ratio["admitd-session/floor"]
        verdict = "MET" if session >= SESSION_TARGET else "NOT MET"
        print(f"target admitd-session/floor >= {SESSION_TARGET}: {verdict} ({session:.3f})")
    if "admitd-jwt/floor" in ratio:
        jwt = ratio["admitd-jwt/floor"]
        verdict = "MET" if jwt >= TARGET_FLOOR_RATIO else "NOT MET"
        print(f"target admitd-jwt/floor >= {TARGET_FLOOR_RATIO}: {verdict} ({jwt:.3f})")
    if any(s.non_2xx for s in summaries.values()):
        print("WARNING: some responses were not 2xx/3xx; those numbers are suspect")


def write_json(
    out: Path, settings: Settings, summaries: dict[str, Summary], ratio: dict[str, float]
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "envoy": envoy_binary()},
        "settings": asdict(settings),
        "path": PATH,
        "variants": {name: asdict(s) for name, s in summaries.items()},
        "ratios": ratio,
        "target": {
            "admitd/floor": TARGET_FLOOR_RATIO,
            "met": ratio["admitd/floor"] >= TARGET_FLOOR_RATIO,
        },
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {out}")


# ---------------------------------------------------------------- main


def variants(max_streams: list[int]) -> list[Variant]:
    chosen = [
        Variant("ceiling", "none"),
        Variant("floor", "floor"),
        Variant("admitd", "admitd"),
        Variant("admitd-uds", "admitd", uds=True),
        Variant("admitd-asyncio", "admitd", event_loop="asyncio"),
        Variant("admitd-session", "admitd", session=True),
        Variant("admitd-jwt", "admitd", jwt=True),
    ]
    chosen += [Variant(f"admitd-ms{n}", "admitd", max_streams=n) for n in max_streams]
    return chosen


def chosen_variants(max_streams: list[int], only: str) -> list[Variant]:
    every = variants(max_streams)
    if not only:
        return every
    wanted = [name.strip() for name in only.split(",") if name.strip()]
    known = {v.name for v in every}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(
            f"--only: unknown variant {unknown[0]!r}; one of {', '.join(sorted(known))}"
        )
    return [v for v in every if v.name in {*wanted, *_BASE_VARIANTS}]


_BASE_VARIANTS = ("ceiling", "floor", "admitd")


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


def run(settings: Settings, chosen: list[Variant], work: Path) -> dict[str, Summary]:
    ws = prepare_workspace(work)
    runs: dict[str, list[Measurement]] = {v.name: [] for v in chosen}
    with ProcessGroup(work / "logs") as group:
        upstream = start_upstream(group, settings.upstream, work)
        if any(v.has_user for v in chosen):
            redis_url = start_redis(group, work)
            ws = replace(ws, redis_url=redis_url, session_token=create_fresh_session(redis_url))
        if any(v.jwt for v in chosen):
            ws = replace(ws, jwt=start_jwks(group, work))
        for round_no in range(1, settings.rounds + 1):
            print(f"round {round_no}/{settings.rounds} (upstream: {settings.upstream})", flush=True)
            for variant in chosen:
                log_dir = work / "logs" / f"{variant.name}-{round_no}"
                runs[variant.name].append(run_variant(variant, ws, upstream, settings, log_dir))
    return {name: summarise(name, measured) for name, measured in runs.items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per variant")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per variant")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
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
        help="comma-separated variants to run besides ceiling, floor and admitd (which the"
        " ratios need), e.g. admitd-uds; default: all",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/latest.json"))
    parser.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1
    settings = Settings(
        args.duration, args.warmup, args.connections, args.threads, args.rounds, args.upstream
    )
    work = Path(tempfile.mkdtemp(prefix="admitd-bench-"))
    try:
        summaries = run(settings, chosen_variants(args.max_streams, args.only), work)
    except (BenchError, OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"\nbenchmark failed: {error}\nlogs and configs kept in {work}", file=sys.stderr)
        return 1
    ratio = ratios(summaries)
    print_report(summaries, ratio)
    write_json(args.out, settings, summaries, ratio)
    if args.keep:
        print(f"work dir kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

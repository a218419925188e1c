"""Check latency with 10 and 1,000 routes, in-process (conversion, facts, decide, response).

    .venv/bin/python bench/bench_policy.py [--iterations 20000]

Routes are distinct path prefixes (`/svc-N/`, each with a CEL condition on every
tenth route); the request hits the last route, the worst case for a linear scan.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import yaml
from envoy.service.auth.v3.external_auth_pb2 import CheckRequest
from prometheus_client import CollectorRegistry

from admitd.config import load_config
from admitd.extauthz.service import AuthorizationService
from admitd.logs import DecisionLog
from admitd.metrics import Metrics
from admitd.pki import DEV_FILES, write_dev_pki
from admitd.runtime import runtime_from_config


def policy(count: int) -> dict[str, object]:
    routes = []
    for n in range(count):
        route: dict[str, object] = {
            "name": f"svc-{n}",
            "match": {"path_prefix": f"/svc-{n}/"},
            "identities": {"spiffe": ["spiffe://admitd.dev/user/*"]},
        }
        if n % 10 == 0:
            route["conditions"] = ['request.method in ["GET", "POST"]']
        routes.append(route)
    return {"routes": routes}


def check_request(path: str, cert_pem: str) -> CheckRequest:
    request = CheckRequest()
    http = request.attributes.request.http
    http.method, http.path, http.host, http.scheme = "GET", path, "api.example.com", "https"
    http.headers.update(
        {":path": path, "x-forwarded-proto": "https", "user-agent": "bench", "x-request-id": "r"}
    )
    request.attributes.source.certificate = quote(cert_pem)
    return request


async def measure(work: Path, count: int, iterations: int) -> float:
    (work / f"p{count}.yaml").write_text(yaml.safe_dump(policy(count)))
    config = {
        "policies": f"p{count}.yaml",
        "metrics_listen": "",
        "tls": {"trust_bundle": f"pki/{DEV_FILES['trust']}"},
    }
    (work / f"c{count}.yaml").write_text(yaml.safe_dump(config))
    runtime = runtime_from_config(load_config(work / f"c{count}.yaml", environ={}))
    service = AuthorizationService(
        runtime.engine, Metrics(CollectorRegistry()), DecisionLog(lambda _: None)
    )
    leaf = (work / "pki" / "alice.pem").read_text().split("-----END CERTIFICATE-----")[0]
    request = check_request(f"/svc-{count - 1}/items", leaf + "-----END CERTIFICATE-----\n")
    response = await service.Check(request, None)
    assert response.HasField("ok_response"), response
    for _ in range(500):
        await service.Check(request, None)
    started = time.perf_counter()
    for _ in range(iterations):
        await service.Check(request, None)
    return (time.perf_counter() - started) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_dev_pki(work / "pki")
        for count in (10, 1000):
            micros = asyncio.run(measure(work, count, args.iterations))
            print(f"{count:>5} routes: {micros:7.1f} us per Check (in-process, last route matched)")


if __name__ == "__main__":
    main()

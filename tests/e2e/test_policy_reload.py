"""Hot reload through a real Envoy: a valid change is swapped in under load with no errors;
a broken change never replaces the running policy."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import EdgeStack, start_edge
from tests.pki_fixtures import PkiSet
from tests.unit.test_yaml_aliases import alias_bomb

pytestmark = pytest.mark.e2e

BEFORE = """
routes:
  - {name: api, match: {path_prefix: /api/}, identities: any}
"""
AFTER = (
    BEFORE
    + """  - {name: fresh, match: {path_prefix: /fresh/}, identities: any}
"""
)
BROKEN = (
    BEFORE
    + """  - {name: bad, match: {path_regex: "("}, identities: any}
"""
)


def replace_file(path: Path, text: str) -> None:
    """Write-then-rename, as config management (and Kubernetes ConfigMaps) do."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@pytest.fixture
def edge(pki: PkiSet, tmp_path: Path) -> Iterator[EdgeStack]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "routes.yaml").write_text(BEFORE)
    stack = start_edge(pki, policies, tmp_path)
    yield stack
    stack.group.stop_all()


def hammer(
    edge: EdgeStack, cert: tuple[Path, Path], stop: threading.Event, seen: Counter[int]
) -> None:
    while not stop.is_set():
        seen[edge.get("/api/items", cert=cert).status] += 1


def reloads(edge: EdgeStack, outcome: str) -> float:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{edge.metrics_port}/metrics", timeout=5
    ) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(f'admitd_policy_reloads_total{{outcome="{outcome}"}}'):
                return float(line.split()[-1])
    return 0.0


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_valid_change_swaps_in_under_load_without_errors(
    edge: EdgeStack, pki: PkiSet, tmp_path: Path
) -> None:
    cert = pki.write_leaf("alice-reload", pki.alice, pki.client_ca)
    policy = tmp_path / "policies" / "routes.yaml"
    assert edge.get("/fresh/x", cert=cert).status == 403
    seen: Counter[int] = Counter()
    stop = threading.Event()
    worker = threading.Thread(target=hammer, args=(edge, cert, stop, seen))
    worker.start()
    try:
        time.sleep(0.5)
        replace_file(policy, AFTER)
        wait_for(lambda: edge.get("/fresh/x", cert=cert).status == 200)
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert set(seen) == {200} and sum(seen.values()) > 20, seen
    assert reloads(edge, "applied") >= 1


def test_broken_change_keeps_the_running_policy(
    edge: EdgeStack, pki: PkiSet, tmp_path: Path
) -> None:
    cert = pki.write_leaf("alice-broken", pki.alice, pki.client_ca)
    replace_file(tmp_path / "policies" / "routes.yaml", BROKEN)
    wait_for(lambda: reloads(edge, "refused") >= 1)
    assert edge.get("/api/items", cert=cert).status == 200
    assert "policy reload refused" in edge.group.log_text("admitd")
    assert "path_regex: invalid regular expression" in edge.group.log_text("admitd")


def test_an_alias_bomb_is_refused_at_once_while_checks_go_on(
    edge: EdgeStack, pki: PkiSet, tmp_path: Path
) -> None:
    cert = pki.write_leaf("alice-bomb", pki.alice, pki.client_ca)
    # ~300 bytes that expand to 9**6 strings: this stalled the loader (and so every
    # Check, since reload ran on the event loop) for minutes.
    replace_file(tmp_path / "policies" / "routes.yaml", BEFORE + alias_bomb())
    started = time.monotonic()
    wait_for(lambda: reloads(edge, "refused") >= 1, timeout=5)
    assert time.monotonic() - started < 5
    assert edge.get("/api/items", cert=cert).status == 200
    assert "anchors and aliases are not allowed" in edge.group.log_text("admitd")


def test_sighup_reloads_through_the_worker_thread(edge: EdgeStack) -> None:
    admitd = next(p for name, p, _ in edge.group._children if name == "admitd")
    before = reloads(edge, "applied")
    admitd.send_signal(signal.SIGHUP)  # forced: files unchanged, loaded and applied anyway
    wait_for(lambda: reloads(edge, "applied") > before, timeout=5)
    assert admitd.poll() is None

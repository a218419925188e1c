"""`admitd dev` watches its children: kill one (Envoy, admitd, the upstream) and it names
it with its last log lines, stops the others and exits non-zero.

The stack runs in its own process, through `run_dev_stack` (what `admitd dev` calls), on
free loopback ports; its children are found in /proc by their parent.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from admitd.devstack.processes import free_port

pytestmark = pytest.mark.e2e

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PORT_NAMES = ("https", "authz", "metrics", "upstream", "envoy_admin", "web", "admin")
RUN_DEV_STACK = """
import sys
from pathlib import Path
from admitd.devstack.stack import DevPorts, run_dev_stack
ports = DevPorts(**{name: int(port) for name, port in (p.split("=") for p in sys.argv[3:])})
sys.exit(run_dev_stack(Path(sys.argv[1]), Path(sys.argv[2]), ports, None))
"""


def children_of(pid: int) -> dict[str, int]:
    """The named children (upstream, admitd, envoy) of `pid`, from /proc."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == pid:
            found[child_name(argv)] = int(entry.name)
    return found


def child_name(argv: list[bytes]) -> str:
    if b"admitd.devstack.echo" in argv:
        return "upstream"
    if b"serve" in argv:
        return "admitd"
    return "envoy" if Path(argv[0].decode()).name == "envoy" else argv[0].decode()


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for_banner(dev: subprocess.Popen[str], out: Path) -> None:
    deadline = time.monotonic() + 30
    while "stack is up" not in out.read_text():
        assert dev.poll() is None, f"admitd dev exited early:\n{out.read_text()}"
        assert time.monotonic() < deadline, "no banner after 30 s"
        time.sleep(0.1)


@pytest.mark.parametrize("victim", ["envoy", "admitd", "upstream"])
def test_a_dead_child_is_named_with_its_log_and_the_rest_stop(victim: str, tmp_path: Path) -> None:
    ports = [f"{name}={free_port()}" for name in PORT_NAMES]
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    argv = [sys.executable, "-c", RUN_DEV_STACK, str(tmp_path / "dev"), str(POLICIES), *ports]
    with out.open("w") as stdout, err.open("w") as stderr:
        dev = subprocess.Popen(argv, stdout=stdout, stderr=stderr, text=True)
    try:
        wait_for_banner(dev, out)
        children = children_of(dev.pid)
        assert set(children) == {"envoy", "admitd", "upstream"}
        os.kill(children[victim], signal.SIGKILL)
        code = dev.wait(timeout=20)
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
    said = err.read_text()
    assert code == 1, said
    assert f"admitd dev: {victim} was killed by SIGKILL; stopping the others." in said
    log_lines = (tmp_path / "dev" / "logs" / f"{victim}.log").read_text().splitlines()
    assert f"last lines of {tmp_path / 'dev' / 'logs' / victim}.log:" in said
    for line in log_lines[-20:] or ["(empty)"]:
        assert f"  | {line}" in said
    assert not [name for name, pid in children.items() if is_running(pid)]


def test_a_child_that_dies_while_starting_is_named_too(tmp_path: Path) -> None:
    ports = {name: free_port() for name in PORT_NAMES}
    with socket.socket() as taken:  # admitd cannot listen for Checks: it exits at start-up
        taken.bind(("127.0.0.1", ports["authz"]))
        taken.listen()
        argv = [sys.executable, "-c", RUN_DEV_STACK, str(tmp_path / "dev"), str(POLICIES)]
        argv += [f"{name}={port}" for name, port in ports.items()]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "admitd dev: admitd exited with code " in done.stderr
    assert "last lines of " in done.stderr and "admitd dev: could not start" in done.stderr
    # admitd dev's own last word, not a traceback of its own (admitd's log may hold one).
    assert done.stderr.splitlines()[-1].startswith("admitd dev: could not start the stack: ")

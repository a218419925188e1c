"""Every command the `admitd dev` banner prints, run as printed (bash, real curl, the real
`admitd sessions` CLI) against the stack `admitd dev` starts, answers what the banner says.

The banner is rendered from `banner_steps()`; this test walks the same list, in order (later
steps read the token files earlier ones write), and also runs the command `totp-enrol`
prints (totp-confirm) with the code of the secret it printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest

from admitd.devstack.banner import CODE, banner_steps, banner_text
from admitd.devstack.processes import ProcessGroup, free_port
from admitd.devstack.stack import DevPorts, start_dev_processes, write_dev_config

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (Debian curl)"),
]

POLICIES = Path(__file__).resolve().parents[2] / "policies"
STATUS_LINE = re.compile(r"^HTTP/[\d.]+ (\d{3})", re.MULTILINE)


@dataclass
class DevStack:
    home: Path
    ports: DevPorts


@pytest.fixture(scope="module", params=["memory", "redis"])
def dev_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevStack]:
    """`admitd dev` with the embedded store, and as `make dev REDIS_URL=...` (`--redis-url`)."""
    redis_url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    home = tmp_path_factory.mktemp("dev")
    names = ("https", "authz", "metrics", "upstream", "envoy_admin", "web", "admin")
    ports = DevPorts(**{name: free_port() for name in names})
    admitd_yaml, envoy_yaml = write_dev_config(home, POLICIES, ports, redis_url)
    with ProcessGroup(home / "logs") as group:
        start_dev_processes(group, admitd_yaml, envoy_yaml, ports)
        yield DevStack(home, ports)


def run_line(line: str) -> subprocess.CompletedProcess[str]:
    """A printed line, through a shell, from the directory the banner was rendered in."""
    return subprocess.run(
        ["bash", "-c", line], capture_output=True, text=True, timeout=20, check=False
    )


def test_every_printed_command_answers_what_the_banner_says(dev_stack: DevStack) -> None:
    steps = banner_steps(dev_stack.home, dev_stack.ports)
    banner = banner_text(dev_stack.home, dev_stack.ports)
    assert all(f"# {step.says}\n  {step.line}\n" in banner for step in steps)
    assert {step.status for step in steps} >= {200, 403, 428, 495}
    totp: pyotp.TOTP | None = None
    for step in steps:
        line = step.line
        if CODE in line:
            assert totp is not None, "a step wants a code before any totp-enrol"
            # totp-confirm used this step's code; a code is accepted once (the next one).
            line = line.replace(CODE, totp.at(time.time() + 30))
        done = run_line(line)
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        if step.status is not None:
            found = STATUS_LINE.search(done.stdout)
            assert found is not None, f"no status line from {line}:\n{done.stdout}"
            assert int(found.group(1)) == step.status, f"{step.says}\n{done.stdout}"
        if "totp-enrol" in line:
            totp = confirm_as_printed(done)


def confirm_as_printed(enrolled: subprocess.CompletedProcess[str]) -> pyotp.TOTP:
    """Run the totp-confirm line `totp-enrol` printed, with the app's current code."""
    totp = pyotp.parse_uri(enrolled.stdout.strip())
    assert isinstance(totp, pyotp.TOTP)
    printed = [line.strip() for line in enrolled.stderr.splitlines() if "totp-confirm" in line]
    assert len(printed) == 1, enrolled.stderr
    confirmed = run_line(printed[0].replace(CODE, totp.now()))
    assert (confirmed.returncode, confirmed.stdout.strip()) == (0, "ok"), confirmed.stderr
    return totp

"""Commands admitd prints run as printed: the `admitd` beside this Python (not a bare name
looked up on PATH), lines the real parser accepts, and `make dev REDIS_URL=...`."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from admitd.admin.cli import totp_confirm_line
from admitd.admin.printed_commands import admitd_program, shell_line, shown_path
from admitd.cli import build_parser
from admitd.devstack.banner import CODE, banner_steps
from admitd.devstack.stack import DevPorts

REPO = Path(__file__).resolve().parents[2]


def parsed(line: str) -> argparse.Namespace:
    """A printed `admitd ...` line, through the real parser (after the program words)."""
    words = shlex.split(line)
    program = admitd_program()
    assert words[: len(program)] == program
    return build_parser().parse_args(words[len(program) :])


def test_the_program_is_the_admitd_beside_this_python_and_it_runs() -> None:
    program = admitd_program()
    beside = Path(os.path.abspath(sys.executable)).parent / "admitd"
    assert Path(os.path.abspath(program[0])) == (
        beside if beside.exists() else Path(sys.executable)
    )
    assert os.sep in program[0]  # a path, never looked up on PATH
    done = subprocess.run([*program, "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("admitd ")


def test_paths_are_relative_under_the_working_directory_else_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert shown_path(tmp_path / ".dev" / "pki" / "a.pem") == ".dev/pki/a.pem"
    assert shown_path(tmp_path / "a.pem") == "./a.pem"
    assert shown_path(Path("/etc/hosts")) == "/etc/hosts"
    assert shell_line(["curl", "-H", "a b", "x'y"]) == "curl -H 'a b' 'x'\"'\"'y'"


def test_totp_enrol_prints_a_complete_totp_confirm_the_parser_accepts() -> None:
    enrol = parsed(
        shell_line(
            [
                *admitd_program(),
                "sessions",
                "totp-enrol",
                "--address",
                "127.0.0.1:9",
                "--cert",
                "my dir/ops.pem",
                "--key",
                "k.pem",
                "--ca",
                "ca.pem",
                "--server-name",
                "admitd",
                "--user",
                "fin",
                "--org",
                "acme",
            ]
        )
    )
    confirm = parsed(totp_confirm_line(enrol).replace(CODE, "123456"))
    assert confirm.sessions_command == "totp-confirm"
    for key in ("address", "cert", "key", "ca", "server_name", "user", "org"):
        assert getattr(confirm, key) == getattr(enrol, key), key
    assert confirm.code == "123456"


def test_every_admitd_line_in_the_banner_parses_and_every_curl_promises_a_status(
    tmp_path: Path,
) -> None:
    steps = banner_steps(tmp_path, DevPorts())
    admitd = [step for step in steps if not step.line.startswith("curl ")]
    assert {parsed(s.line.split(" > ")[0]).sessions_command for s in admitd} == {
        "create",
        "totp-enrol",
        "verify",
    }
    assert all(step.status is not None for step in steps if step.line.startswith("curl "))
    assert all(step.says.startswith(str(step.status)) for step in steps if step.status)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_dev_passes_redis_url_on() -> None:
    def dev_line(*assignments: str) -> str:
        done = subprocess.run(
            ["make", "-n", "--no-print-directory", "-C", str(REPO), "dev", *assignments],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "REDIS_URL": ""},
        )
        return next(line for line in done.stdout.splitlines() if " dev" in line)

    assert dev_line().split() == [".venv/bin/admitd", "dev"]
    with_redis = dev_line("REDIS_URL=redis://127.0.0.1:6379/2")
    assert shlex.split(with_redis)[1:] == ["dev", "--redis-url", "redis://127.0.0.1:6379/2"]

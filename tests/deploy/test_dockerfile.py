"""The image definition, checked by structure: images cannot be built on these machines."""

from __future__ import annotations

import json
import re
import tomllib

from admitd.cli import build_parser
from admitd.commands import registrars
from tests.deploy.render import REPO

_DOCKERFILE = (REPO / "Dockerfile").read_text()
# Logical lines: comments dropped, `\` continuations joined.
_LINES = [
    " ".join(line.split())
    for line in re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in _DOCKERFILE.splitlines() if not line.lstrip().startswith("#")),
    ).splitlines()
    if line.strip()
]


def _instructions(name: str) -> list[str]:
    return [line[len(name) :].strip() for line in _LINES if line.upper().startswith(name + " ")]


def test_base_is_a_slim_python_pinned_by_digest() -> None:
    (default,) = [a.split("=", 1)[1] for a in _instructions("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11-slim-\w+@sha256:[0-9a-f]{64}", default)
    stages = _instructions("FROM")
    assert len(stages) >= 2  # multi-stage: the build tools stay behind
    assert all(stage.split()[0] == "${PYTHON_IMAGE}" for stage in stages)


def test_runs_as_a_numeric_non_root_user() -> None:
    *_, user = _instructions("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or gid.isdigit())


def test_installs_no_dev_extras() -> None:
    installs = " ".join(_instructions("RUN"))
    extras = re.findall(r"pip install '\.\[([^\]]*)\]'", installs)
    assert extras == ["uvloop,http"], "the image installs the uvloop and http extras only"
    assert "-e " not in installs
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    for requirement in dev:
        assert re.split(r"[<>=\[ ]", requirement)[0] not in installs


def test_entrypoint_is_admitd_serve_and_exists() -> None:
    (entrypoint,) = _instructions("ENTRYPOINT")
    assert json.loads(entrypoint) == ["admitd", "serve"]  # exec form
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["admitd"] == "admitd.cli:main"
    assert len(registrars()) > 0
    assert build_parser().parse_args(["serve"]).command == "serve"


def test_config_comes_from_the_file_the_manifests_mount() -> None:
    env = " ".join(_instructions("ENV"))
    assert "ADMITD_CONFIG=/etc/admitd/config/admitd.yaml" in env
    deployment = (REPO / "deploy" / "k8s" / "base" / "deployment.yaml").read_text()
    assert "mountPath: /etc/admitd/config" in deployment


def test_dockerignore_keeps_the_build_context_to_the_package() -> None:
    ignore = (REPO / ".dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!server/"]

"""Render deploy/k8s with the command docs/deploy.md prints: `kubectl kustomize <dir>`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAYS = ("edge", "istio", "envoy-gateway")  # built on the base
# Examples rendered on their own, without the base (no admitd Deployment or NetworkPolicy).
STANDALONE_OVERLAYS = ("sidecar",)
# Plain `kubectl kustomize`: no --load-restrictor, so every file an overlay loads is inside it.
COMMAND = ("kubectl", "kustomize")
MIN_KUSTOMIZE_MAJOR = 5  # `labels:`, `patches:` with targets, Components

Manifest = dict[str, Any]


def has_kubectl() -> bool:
    return shutil.which(COMMAND[0]) is not None


def kustomize_major() -> int:
    out = subprocess.run(
        ["kubectl", "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"Kustomize Version: v(\d+)", out)
    return int(found.group(1)) if found else 0


def render(directory: Path) -> list[Manifest]:
    done = subprocess.run(
        [*COMMAND, str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def find_prefixed(manifests: list[Manifest], kind: str, prefix: str) -> Manifest:
    """A generated object, whose name kustomize suffixes with a content hash."""
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"expected one {kind}/{prefix}*, found {len(found)}"
    return found[0]

"""Each overlay (and the base, and the base with the PodMonitor component) rendered once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy.render import (
    BASE,
    K8S,
    MIN_KUSTOMIZE_MAJOR,
    OVERLAYS,
    STANDALONE_OVERLAYS,
    Manifest,
    has_kubectl,
    kustomize_major,
    render,
)

_cache: dict[str, list[Manifest]] = {}


def _rendered(name: str, directory: Path) -> list[Manifest]:
    if not has_kubectl():
        pytest.skip("kubectl not installed (scripts/install-system-deps.sh installs it)")
    major = kustomize_major()
    assert major >= MIN_KUSTOMIZE_MAJOR, (
        f"kubectl's kustomize is v{major}; deploy/k8s needs v{MIN_KUSTOMIZE_MAJOR}+ (kubectl 1.27+)"
    )
    if name not in _cache:
        _cache[name] = render(directory)
    return _cache[name]


@pytest.fixture(params=["base", *OVERLAYS, *STANDALONE_OVERLAYS])
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    """Every render users apply: the base and each overlay."""
    name: str = request.param
    return _rendered(name, BASE if name == "base" else K8S / "overlays" / name)


@pytest.fixture
def base() -> list[Manifest]:
    return _rendered("base", BASE)


@pytest.fixture
def overlay(request: pytest.FixtureRequest) -> list[Manifest]:
    """Indirectly parametrised with an overlay name."""
    name: str = request.param
    return _rendered(name, K8S / "overlays" / name)


@pytest.fixture
def with_podmonitor(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """The base plus the optional component, as an overlay that lists it would render."""
    root = tmp_path_factory.mktemp("podmonitor")
    # kustomize takes bases and components by relative path only.
    base, component = (os.path.relpath(p, root) for p in (BASE, K8S / "components/podmonitor"))
    (root / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{base}]\ncomponents: [{component}]\n"
    )
    return _rendered("podmonitor", root)

"""Every rendered object is valid for its kind: the API server would accept it."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.render import Manifest
from tests.deploy.schemas import crd_errors, is_crd_kind, validate_core

_CLUSTER_SCOPED = {"Namespace"}


def test_core_kinds_are_valid_at_the_pinned_kubernetes_version(rendered: list[Manifest]) -> None:
    core = [m for m in rendered if not is_crd_kind(m)]
    assert core
    for manifest in core:
        validate_core(manifest)


def test_crd_kinds_match_their_published_schemas(rendered: list[Manifest]) -> None:
    for manifest in (m for m in rendered if is_crd_kind(m)):
        assert crd_errors(manifest) == [], f"{manifest['kind']}/{manifest['metadata']['name']}"


def test_podmonitor_component_renders_a_valid_podmonitor(with_podmonitor: list[Manifest]) -> None:
    monitors = [m for m in with_podmonitor if m["kind"] == "PodMonitor"]
    assert len(monitors) == 1
    assert crd_errors(monitors[0]) == []
    assert monitors[0]["metadata"]["namespace"] == "admitd"


def test_validation_catches_a_wrong_field(base: list[Manifest]) -> None:
    # The checks above can fail: an unknown field and a wrong type are both refused.
    deployment = copy.deepcopy(next(m for m in base if m["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(deployment)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = 1
    deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonroot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(deployment)


def test_crd_validation_catches_a_wrong_field() -> None:
    policy = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "x"},
        "spec": {"action": "CUSTOM", "provider": {"name": "admitd"}, "rulez": []},
    }
    assert crd_errors(policy)


def test_every_namespaced_object_names_its_namespace(rendered: list[Manifest]) -> None:
    # Else `kubectl apply -k` would put it in whatever namespace the context has.
    for manifest in rendered:
        if manifest["kind"] not in _CLUSTER_SCOPED:
            assert manifest["metadata"].get("namespace"), manifest["metadata"]["name"]


def test_images_are_set_by_kustomize(rendered: list[Manifest]) -> None:
    # Manifests name placeholders (`admitd`, `envoy`); the kustomization's `images:` sets them.
    for manifest in (m for m in rendered if m["kind"] == "Deployment"):
        pod = manifest["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            assert "/" in container["image"], container["image"]

"""Validation: core kinds with kubernetes-validate at a pinned Kubernetes version, CRD kinds
against the CRDs' published schemas kept in schemas/ (their sources: schemas/SOURCES.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

KUBERNETES_VERSION = "1.30"  # the oldest Kubernetes the manifests promise (grpc probes: 1.27)
SCHEMAS = Path(__file__).resolve().parent / "schemas"
CRD_SCHEMAS = {
    ("security.istio.io/v1", "AuthorizationPolicy"): "authorizationpolicy_v1.json",
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"): "securitypolicy_v1alpha1.json",
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"): "referencegrant_v1beta1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor_v1.json",
}


def is_crd_kind(manifest: dict[str, Any]) -> bool:
    return (manifest["apiVersion"], manifest["kind"]) in CRD_SCHEMAS


def validate_core(manifest: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError; strict: unknown fields are errors too."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    validator = _validator(CRD_SCHEMAS[(manifest["apiVersion"], manifest["kind"])])
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(manifest)
    ]


@cache
def _validator(file: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / file).read_text())
    return jsonschema.Draft7Validator(schema)

"""The admitd Deployment keeps the issue's promises, and its config is one admitd loads."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from admitd.config import load_config
from admitd.policy.loader import load_policies
from tests.deploy.render import OVERLAYS, Manifest, find, find_prefixed
from tests.pki_fixtures import PkiSet

_CHECK_PORT = 9001


def _pod(manifests: list[Manifest]) -> dict:
    return find(manifests, "Deployment", "admitd")["spec"]["template"]["spec"]


def _config_text(manifests: list[Manifest]) -> str:
    return find_prefixed(manifests, "ConfigMap", "admitd-config-")["data"]["admitd.yaml"]


def test_runs_non_root_read_only_without_escalation(base: list[Manifest]) -> None:
    pod = _pod(base)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_probes_ask_grpc_health_on_the_check_port(base: list[Manifest]) -> None:
    admitd = _pod(base)["containers"][0]
    config = yaml.safe_load(_config_text(base))
    assert config["listen"].endswith(f":{_CHECK_PORT}")
    assert admitd["readinessProbe"]["grpc"] == {
        "port": _CHECK_PORT,
        "service": "envoy.service.auth.v3.Authorization",
    }
    assert admitd["livenessProbe"]["grpc"]["port"] == _CHECK_PORT


def test_termination_leaves_time_for_grace_seconds(base: list[Manifest]) -> None:
    pod = _pod(base)
    grace = yaml.safe_load(_config_text(base))["grace_seconds"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + grace


def test_replicas_spread_and_survive_a_drain(base: list[Manifest]) -> None:
    keys = {c["topologyKey"] for c in _pod(base)["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert find(base, "HorizontalPodAutoscaler", "admitd")["spec"]["minReplicas"] >= 2
    assert find(base, "PodDisruptionBudget", "admitd")["spec"]["maxUnavailable"] == 1
    assert "replicas" not in find(base, "Deployment", "admitd")["spec"]  # the HPA owns it


@pytest.mark.parametrize("overlay", OVERLAYS, indirect=True)
def test_only_envoy_reaches_the_check_port_only_prometheus_the_metrics(
    overlay: list[Manifest],
) -> None:
    rules = find(overlay, "NetworkPolicy", "admitd")["spec"]["ingress"]
    ports = [sorted(p["port"] for p in rule["ports"]) for rule in rules]
    assert ports == [["grpc-check", "http-web"], ["http-metrics"]]
    envoy_peers = rules[0]["from"]
    assert all(peer.get("podSelector", {}).get("matchLabels") for peer in envoy_peers)
    assert "admitd-client" not in str(envoy_peers)  # each overlay names its own Envoy
    assert rules[1]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "prometheus"
    }


def test_redis_comes_from_the_deployers_secret(base: list[Manifest]) -> None:
    env = {e["name"]: e for e in _pod(base)["containers"][0]["env"]}
    ref = env["ADMITD_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "admitd-redis" and not ref.get("optional", False)


def test_rendered_config_and_policies_load(
    base: list[Manifest], pki: PkiSet, tmp_path: Path
) -> None:
    # The pod's paths, moved under tmp_path; the Secrets made as the deployer would.
    def moved(path: str) -> Path:
        return tmp_path / path.lstrip("/")

    text = _config_text(base)
    for prefix in ("/etc/admitd/", "/var/run/admitd/", "/var/lib/admitd/"):
        text = text.replace(prefix, f"{moved(prefix)}/")
    policies = moved("/etc/admitd/policies")
    policies.mkdir(parents=True)
    for name, body in find(base, "ConfigMap", "admitd-policies")["data"].items():
        (policies / name).write_text(body)
    moved("/etc/admitd/tls").mkdir(parents=True)
    moved("/etc/admitd/tls/trust-bundle.pem").write_bytes(pki.trust_bundle.read_bytes())
    keys = moved("/var/run/admitd/keys")
    keys.mkdir(parents=True)
    audit_key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for name, data in {
        "web-signing.key": secrets.token_bytes(32),
        "audit-signing.key": audit_key,
    }.items():
        fd = os.open(keys / name, os.O_WRONLY | os.O_CREAT, 0o600)  # as the init container copies
        os.write(fd, data)
        os.close(fd)
    config_file = moved("/etc/admitd/config/admitd.yaml")
    config_file.parent.mkdir(parents=True)
    config_file.write_text(text)

    config = load_config(config_file, environ={"ADMITD_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.web is not None and config.audit is not None and config.kms is not None
    assert load_policies(config.policies).routes

"""What each overlay wires to admitd names objects that exist, with the right ports."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.render import K8S, REPO, Manifest, find, find_prefixed

_EDGE = K8S / "overlays" / "edge"
# envoy/edge.yaml's clusters (loopback in `admitd dev`) and the Service each becomes here.
_CLUSTER_HOSTS = {"admitd": "admitd-headless", "admitd_web": "admitd", "upstream": "upstream"}


def _edge_as_documented() -> dict[str, Any]:
    """envoy/edge.yaml with exactly the changes overlays/edge/envoy.yaml's header lists."""
    doc = yaml.safe_load((REPO / "envoy" / "edge.yaml").read_text())
    doc["static_resources"]["listeners"][0]["address"]["socket_address"]["address"] = "0.0.0.0"
    for cluster in doc["static_resources"]["clusters"]:
        cluster["type"] = "STRICT_DNS"
        for endpoints in cluster["load_assignment"]["endpoints"]:
            for lb in endpoints["lb_endpoints"]:
                lb["endpoint"]["address"]["socket_address"]["address"] = _CLUSTER_HOSTS[
                    cluster["name"]
                ]
    return doc


def test_edge_envoy_config_is_envoy_edge_yaml_with_only_the_listed_changes() -> None:
    assert yaml.safe_load((_EDGE / "envoy.yaml").read_text()) == _edge_as_documented()


@pytest.mark.parametrize("overlay", ["edge"], indirect=True)
def test_edge_envoy_mounts_that_config_and_reaches_admitd_services(
    overlay: list[Manifest],
) -> None:
    config_map = find_prefixed(overlay, "ConfigMap", "admitd-edge-envoy-")
    envoy = yaml.safe_load(config_map["data"]["envoy.yaml"])
    assert envoy == _edge_as_documented()
    pod = find(overlay, "Deployment", "admitd-edge")["spec"]["template"]["spec"]
    assert {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v} == {
        config_map["metadata"]["name"]
    }
    ports = {
        (s["metadata"]["name"], p["port"])
        for s in overlay
        if s["kind"] == "Service"
        for p in s["spec"]["ports"]
    }
    for cluster in envoy["static_resources"]["clusters"]:
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        target = (
            address["address"]["socket_address"]["address"],
            address["address"]["socket_address"]["port_value"],
        )
        if cluster["name"] != "upstream":  # the deployer's application
            assert target in ports, cluster["name"]
    assert find(overlay, "Service", "admitd-headless")["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("overlay", ["istio"], indirect=True)
def test_istio_provider_names_admitd_and_the_policy_uses_it(overlay: list[Manifest]) -> None:
    mesh = yaml.safe_load((K8S / "overlays" / "istio" / "mesh-config.yaml").read_text())
    (provider,) = mesh["extensionProviders"]
    grpc = provider["envoyExtAuthzGrpc"]
    service = find(overlay, "Service", "admitd")
    assert grpc["service"] == f"admitd.{service['metadata']['namespace']}.svc.cluster.local"
    assert grpc["port"] in {
        p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc-check"
    }
    assert grpc["failOpen"] is False
    policy = find(overlay, "AuthorizationPolicy", "admitd-ext-authz")["spec"]
    assert policy["action"] == "CUSTOM" and policy["provider"]["name"] == provider["name"]
    assert (
        find(overlay, "Namespace", "admitd")["metadata"]["labels"]["istio-injection"] == "enabled"
    )


@pytest.mark.parametrize("overlay", ["envoy-gateway"], indirect=True)
def test_envoy_gateway_policy_reaches_admitd_through_a_reference_grant(
    overlay: list[Manifest],
) -> None:
    policy = find(overlay, "SecurityPolicy", "admitd-ext-authz")
    (ref,) = policy["spec"]["extAuth"]["grpc"]["backendRefs"]
    service = find(overlay, "Service", "admitd")
    assert (ref["name"], ref["namespace"]) == ("admitd", service["metadata"]["namespace"])
    assert ref["port"] == 9001 and policy["spec"]["extAuth"]["failOpen"] is False
    grant = find(overlay, "ReferenceGrant", "admitd-from-gateway")
    assert grant["metadata"]["namespace"] == ref["namespace"]
    assert grant["spec"]["from"] == [
        {
            "group": "gateway.envoyproxy.io",
            "kind": "SecurityPolicy",
            "namespace": policy["metadata"]["namespace"],
        }
    ]

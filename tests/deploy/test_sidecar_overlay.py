"""overlays/sidecar: one workload's pod with envoy/sidecar.yaml and admitd on a Unix socket.

The socket is the trust boundary (docs/mesh.md), so these check who can reach it, that both
halves name the same files, and that the probes ask a real admitd the right question.
"""

from __future__ import annotations

import http.client
import os
import stat
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from admitd.certs.revocation import deny_list_from_text
from admitd.config import load_config
from admitd.devstack.processes import ProcessGroup, free_port, wait_for_port
from admitd.policy.loader import load_policies
from tests.deploy.render import K8S, REPO, Manifest, find, find_prefixed, render
from tests.pki_fixtures import PkiSet

_OVERLAY = K8S / "overlays" / "sidecar"
_SIDECAR = REPO / "envoy" / "sidecar.yaml"
_CHECK_SERVICE = "envoy.service.auth.v3.Authorization"
_IMAGE_PYTHON = "/opt/admitd/bin/python"  # the Dockerfile's venv
_sidecar = pytest.mark.parametrize("overlay", ["sidecar"], indirect=True)


def _pod(manifests: list[Manifest]) -> dict[str, Any]:
    return find(manifests, "Deployment", "workload")["spec"]["template"]["spec"]


def _containers(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in _pod(manifests)["containers"]}


def _volumes(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in _pod(manifests)["volumes"]}


def _mounts(container: dict[str, Any]) -> dict[str, str]:
    """mountPath -> volume name."""
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}


def _admitd_config_text(manifests: list[Manifest]) -> str:
    return find_prefixed(manifests, "ConfigMap", "workload-admitd-config-")["data"]["admitd.yaml"]


def _socket_path(manifests: list[Manifest]) -> PurePosixPath:
    listen = yaml.safe_load(_admitd_config_text(manifests))["listen"]
    assert listen.startswith("unix:///")
    return PurePosixPath(listen.removeprefix("unix://"))


def _envoy_config(manifests: list[Manifest]) -> dict[str, Any]:
    data = find_prefixed(manifests, "ConfigMap", "workload-envoy-")["data"]["sidecar.yaml"]
    config: dict[str, Any] = yaml.safe_load(data)
    return config


def _files_in(volume: dict[str, Any], manifests: list[Manifest]) -> set[str]:
    """The file names a ConfigMap or Secret volume shows: its items, else every key (a
    Secret is the deployer's, so its keys are the ones the Deployment's header promises)."""
    source = volume.get("configMap") or volume.get("secret")
    assert source is not None, volume["name"]
    if "items" in source:
        return {item["path"] for item in source["items"]}
    if "configMap" in volume:
        return set(find(manifests, "ConfigMap", source["name"])["data"])
    return {"workload.pem", "workload.key", "mesh-ca.pem"}


def _file_is_mounted(
    path: str, container: dict[str, Any], manifests: list[Manifest], *, directory: bool = False
) -> None:
    target = PurePosixPath(path)
    mounts = _mounts(container)
    where = str(target) if directory else str(target.parent)
    assert where in mounts, f"{container['name']} mounts nothing at {where}"
    if not directory:
        volume = _volumes(manifests)[mounts[where]]
        assert target.name in _files_in(volume, manifests), f"{volume['name']} has no {target.name}"


def test_the_overlay_copy_is_envoy_sidecar_yaml_byte_for_byte() -> None:
    assert (_OVERLAY / "envoy" / "sidecar.yaml").read_bytes() == _SIDECAR.read_bytes()


@_sidecar
def test_envoy_runs_that_copy_from_its_configmap(overlay: list[Manifest]) -> None:
    config_map = find_prefixed(overlay, "ConfigMap", "workload-envoy-")
    assert config_map["data"]["sidecar.yaml"] == _SIDECAR.read_text()
    envoy = _containers(overlay)["envoy"]
    config_file = PurePosixPath(envoy["args"][envoy["args"].index("-c") + 1])
    volume = _volumes(overlay)[_mounts(envoy)[str(config_file.parent)]]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_file.name == "sidecar.yaml"


@_sidecar
def test_the_socket_volume_is_mounted_in_envoy_and_admitd_only(overlay: list[Manifest]) -> None:
    socket_dir = str(_socket_path(overlay).parent)
    (envoy_pipe,) = [
        e["endpoint"]["address"]["pipe"]["path"]
        for c in _envoy_config(overlay)["static_resources"]["clusters"]
        if c["name"] == "admitd"
        for group in c["load_assignment"]["endpoints"]
        for e in group["lb_endpoints"]
    ]
    assert envoy_pipe == str(_socket_path(overlay))  # both halves name the same socket
    volume_name = _mounts(_containers(overlay)["admitd"])[socket_dir]
    assert "emptyDir" in _volumes(overlay)[volume_name]
    pod = _pod(overlay)
    mounted_by = {
        c["name"]
        for c in pod["containers"] + pod.get("initContainers", [])
        if volume_name in _mounts(c).values()
    }
    assert mounted_by == {"envoy", "admitd"}
    assert _mounts(_containers(overlay)["envoy"])[socket_dir] == volume_name
    # Nor anything else Envoy or admitd mounts: the Secret, the config, the policies.
    shared = set(_mounts(_containers(overlay)["envoy"]).values()) | set(
        _mounts(_containers(overlay)["admitd"]).values()
    )
    assert not shared & set(_mounts(_containers(overlay)["app"]).values())


@_sidecar
def test_envoy_and_admitd_share_the_sockets_group(overlay: list[Manifest]) -> None:
    # admitd creates the socket 0660 (tested below with a real admitd): Envoy, another
    # user, opens it only through the group.
    pod = _pod(overlay)
    context = pod["securityContext"]
    containers = _containers(overlay)

    def effective(name: str, key: str) -> int:
        value: int = containers[name]["securityContext"].get(key, context.get(key))
        return value

    assert effective("envoy", "runAsGroup") == effective("admitd", "runAsGroup")
    assert context["fsGroup"] == effective("admitd", "runAsGroup")
    assert effective("envoy", "runAsUser") != effective("admitd", "runAsUser")
    assert effective("app", "runAsUser") not in {
        effective("admitd", "runAsUser"),
        effective("envoy", "runAsUser"),
    }
    assert effective("app", "runAsGroup") != effective("admitd", "runAsGroup")


@_sidecar
def test_every_container_is_hardened_and_sized(overlay: list[Manifest]) -> None:
    pod = _pod(overlay)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert set(_containers(overlay)) == {"app", "envoy", "admitd"}
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context.get("runAsUser", pod["securityContext"]["runAsUser"]) != 0
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert "privileged" not in context and "add" not in context["capabilities"]
        assert container["resources"]["requests"] and container["resources"]["limits"]


@_sidecar
def test_envoy_gets_its_files_and_admitd_only_the_mesh_ca(overlay: list[Manifest]) -> None:
    tls = _envoy_config(overlay)["static_resources"]["listeners"][0]["filter_chains"][0]
    context = tls["transport_socket"]["typed_config"]["common_tls_context"]
    (certificate,) = context["tls_certificates"]
    envoy = _containers(overlay)["envoy"]
    for path in (
        certificate["certificate_chain"]["filename"],
        certificate["private_key"]["filename"],
        context["validation_context"]["trusted_ca"]["filename"],
    ):
        _file_is_mounted(path, envoy, overlay)

    admitd = _containers(overlay)["admitd"]
    config = yaml.safe_load(_admitd_config_text(overlay))
    for path in (config["tls"]["trust_bundle"], config["tls"]["deny_list"]):
        _file_is_mounted(path, admitd, overlay)
    _file_is_mounted(config["policies"], admitd, overlay, directory=True)
    env = {e["name"]: e["value"] for e in admitd["env"]}
    _file_is_mounted(env["ADMITD_CONFIG"], admitd, overlay)
    mesh_ca = _volumes(overlay)[_mounts(admitd)["/etc/admitd/mesh"]]
    assert mesh_ca["secret"]["items"] == [{"key": "mesh-ca.pem", "path": "mesh-ca.pem"}]
    assert (
        mesh_ca["secret"]["secretName"]
        == (_volumes(overlay)[_mounts(envoy)["/etc/admitd/mesh"]]["secret"]["secretName"])
    )


@_sidecar
def test_the_service_exposes_only_envoys_inbound_port(overlay: list[Manifest]) -> None:
    services = [m for m in overlay if m["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services] == ["workload"]
    (port,) = services[0]["spec"]["ports"]
    envoy_ports = {p["name"]: p["containerPort"] for p in _containers(overlay)["envoy"]["ports"]}
    listener = _envoy_config(overlay)["static_resources"]["listeners"][0]
    assert port["port"] == 15006 == envoy_ports[port["targetPort"]]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 15006}
    labels = find(overlay, "Deployment", "workload")["spec"]["template"]["metadata"]["labels"]
    assert services[0]["spec"]["selector"].items() <= labels.items()
    # The application's own port stays on the pod's loopback, where Envoy sends requests.
    assert "ports" not in _containers(overlay)["app"]
    (workload,) = [
        c for c in _envoy_config(overlay)["static_resources"]["clusters"] if c["name"] == "workload"
    ]
    address = workload["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert address["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8080}


@_sidecar
def test_images_are_the_base_and_edge_references(
    overlay: list[Manifest], base: list[Manifest]
) -> None:
    def image(manifests: list[Manifest], deployment: str, container: str) -> str:
        pod = find(manifests, "Deployment", deployment)["spec"]["template"]["spec"]
        (found,) = [c["image"] for c in pod["containers"] if c["name"] == container]
        return found

    assert image(overlay, "workload", "admitd") == image(base, "admitd", "admitd")
    edge = render(K8S / "overlays" / "edge")
    assert image(overlay, "workload", "envoy") == image(edge, "admitd-edge", "envoy")
    assert image(overlay, "workload", "app") == "registry.example/your-app:latest"


@_sidecar
def test_termination_lets_admitd_outlive_envoy(overlay: list[Manifest]) -> None:
    pod = _pod(overlay)
    containers = _containers(overlay)
    sleep = {
        name: int(containers[name]["lifecycle"]["preStop"]["exec"]["command"][1])
        for name in ("envoy", "admitd")
    }
    grace = yaml.safe_load(_admitd_config_text(overlay))["grace_seconds"]
    assert sleep["admitd"] > sleep["envoy"]  # Envoy's last Checks still get an answer
    assert pod["terminationGracePeriodSeconds"] > sleep["admitd"] + grace


class _Pod:
    """The rendered objects written where a test can use them: every absolute path of
    the pod moved under `root`, the Secret made as the deployer would."""

    def __init__(self, manifests: list[Manifest], root: Path, pki: PkiSet) -> None:
        self.root = root
        text = _admitd_config_text(manifests)
        for prefix in ("/etc/admitd/", "/run/admitd/"):
            text = text.replace(prefix, f"{self.moved(prefix)}/")
        self.metrics_port = free_port()
        config = yaml.safe_load(_admitd_config_text(manifests))
        text = text.replace(config["metrics_listen"], f"127.0.0.1:{self.metrics_port}")
        for directory, config_map in (
            ("/etc/admitd/policies", "workload-admitd-policies"),
            ("/etc/admitd/deny", "workload-admitd-deny-list"),
        ):
            self.moved(directory).mkdir(parents=True)
            for name, body in find(manifests, "ConfigMap", config_map)["data"].items():
                (self.moved(directory) / name).write_text(body)
        self.moved("/etc/admitd/mesh").mkdir(parents=True)
        self.moved("/etc/admitd/mesh/mesh-ca.pem").write_bytes(pki.trust_bundle.read_bytes())
        self.moved("/run/admitd").mkdir(parents=True)  # the emptyDir
        self.config_file = self.moved("/etc/admitd/config/admitd.yaml")
        self.config_file.parent.mkdir(parents=True)
        self.config_file.write_text(text)

    def moved(self, path: str) -> Path:
        return self.root / path.lstrip("/")


@_sidecar
def test_rendered_config_policies_and_deny_list_load(
    overlay: list[Manifest], pki: PkiSet, tmp_path: Path
) -> None:
    pod = _Pod(overlay, tmp_path, pki)
    config = load_config(pod.config_file, environ={})
    assert config.listen == f"unix://{pod.moved('/run/admitd/check.sock')}"
    assert config.mesh is not None and config.mesh.require_certificate
    (caller,) = config.mesh.callers
    assert caller.unix_socket and not caller.principals and not caller.networks
    # The trust domain admitd accepts is the one Envoy's SAN matcher lets through.
    tls = _envoy_config(overlay)["static_resources"]["listeners"][0]["filter_chains"][0]
    validation = tls["transport_socket"]["typed_config"]["common_tls_context"]
    (san,) = validation["validation_context"]["match_typed_subject_alt_names"]
    assert {f"spiffe://{domain}/" for domain in config.mesh.trust_domains} == {
        san["matcher"]["prefix"]
    }
    assert config.tls.trust_bundles == (pod.moved("/etc/admitd/mesh/mesh-ca.pem"),)
    assert config.tls.deny_list is not None
    deny_list_from_text(config.tls.deny_list.read_text(), source=str(config.tls.deny_list))
    assert [r.name for r in load_policies(config.policies).routes] == ["readers", "writers"]


def _readiness(manifests: list[Manifest], socket: Path) -> subprocess.CompletedProcess[str]:
    """The readiness probe's command, run here: the image's Python is this one, and the
    socket is where the test's admitd listens."""
    command = _containers(manifests)["admitd"]["readinessProbe"]["exec"]["command"]
    assert command[0] == _IMAGE_PYTHON
    assert "python -m venv /opt/admitd" in (REPO / "Dockerfile").read_text()
    script = command[2]
    assert f'"unix://{_socket_path(manifests)}"' in script and _CHECK_SERVICE in script
    script = script.replace(str(_socket_path(manifests)), str(socket))
    return subprocess.run(
        [sys.executable, *command[1:2], script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _healthz(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status
    finally:
        connection.close()


def _start_admitd(
    group: ProcessGroup, pod: _Pod, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    process = group.start(
        "admitd",
        [sys.executable, "-m", "admitd", "serve", "--config", str(pod.config_file)],
        env=env,
    )
    wait_for_port(pod.metrics_port, process=process)  # opened before the socket
    return process


@_sidecar
def test_probes_pass_on_a_serving_admitd_and_fail_when_it_stops(
    overlay: list[Manifest], pki: PkiSet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pod = _Pod(overlay, tmp_path_factory.mktemp("pod"), pki)
    socket = pod.moved(str(_socket_path(overlay)))
    admitd = _containers(overlay)["admitd"]
    liveness = admitd["livenessProbe"]["httpGet"]
    metrics = {p["name"]: p["containerPort"] for p in admitd["ports"]}
    metrics_listen = yaml.safe_load(_admitd_config_text(overlay))["metrics_listen"]
    assert metrics_listen.endswith(f":{metrics[liveness['port']]}")
    assert liveness["path"] == "/healthz"

    assert _readiness(overlay, socket).returncode != 0  # no admitd yet
    with ProcessGroup(pod.root / "logs") as group:
        process = _start_admitd(group, pod)
        deadline = time.monotonic() + 20
        while (probe := _readiness(overlay, socket)).returncode != 0:
            assert process.poll() is None, group.log_tail("admitd")
            assert time.monotonic() < deadline, probe.stderr
            time.sleep(0.2)
        assert stat.S_IMODE(os.stat(socket).st_mode) == 0o660  # owner and group: see above
        assert _healthz(pod.metrics_port) == 200

        process.terminate()  # SIGTERM: NOT_SERVING, then grace_seconds for in-flight Checks
        deadline = time.monotonic() + 10
        while _readiness(overlay, socket).returncode == 0:
            assert time.monotonic() < deadline, "still ready after SIGTERM"
            time.sleep(0.1)
        process.wait(timeout=30)


@_sidecar
def test_readiness_reads_the_check_services_status_and_liveness_does_not(
    overlay: list[Manifest], pki: PkiSet, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A Redis that cannot be reached (nothing listens on that port) leaves admitd running
    # but NOT_SERVING: the probe must fail on the answer itself, not only when the socket is
    # gone, while liveness keeps the container (a Redis outage is no reason to restart).
    pod = _Pod(overlay, tmp_path_factory.mktemp("pod"), pki)
    socket = pod.moved(str(_socket_path(overlay)))
    with ProcessGroup(pod.root / "logs") as group:
        process = _start_admitd(
            group, pod, env={"ADMITD_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
        )
        deadline = time.monotonic() + 20
        while "Traceback" in (probe := _readiness(overlay, socket)).stderr:  # no answer yet
            assert process.poll() is None, group.log_tail("admitd")
            assert time.monotonic() < deadline, probe.stderr
            time.sleep(0.2)
        assert probe.returncode == 1, probe.stderr  # answered, and not SERVING
        assert "not ready: redis" in group.log_text("admitd")
        assert _healthz(pod.metrics_port) == 200
        assert process.poll() is None

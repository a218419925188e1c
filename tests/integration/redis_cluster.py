"""A throwaway three-master Redis Cluster on free loopback ports.

With `replicas=1` each master has a replica (six nodes) and nodes time out after
`node_timeout_ms` (1 s by default then), so a SIGKILLed master's replica is promoted
within a few seconds: `kill`, `wait_promoted`. Without replicas, Redis's own timeout.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

__all__ = ["ClusterNode", "RedisCluster3"]

_MASTERS = 3


@dataclass(frozen=True, slots=True)
class ClusterNode:
    """One line of CLUSTER NODES, as the node asked sees it."""

    port: int
    node_id: str
    flags: frozenset[str]  # master / slave, myself, fail, fail?, ...
    master_id: str  # "-" for a master
    slots: tuple[tuple[int, int], ...]  # inclusive ranges

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return bool({"fail", "fail?"} & self.flags)

    def owns(self, slot: int) -> bool:
        return any(low <= slot <= high for low, high in self.slots)


class RedisCluster3:
    def __init__(
        self, workdir: Path, *, replicas: int = 0, node_timeout_ms: int | None = None
    ) -> None:
        self.workdir = workdir
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms or (1000 if replicas else None)
        self.ports = _cluster_ports(_MASTERS * (1 + replicas))
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self.killed: list[int] = []

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @property
    def live_ports(self) -> list[int]:
        return [p for p in self.ports if p in self._processes]

    def __enter__(self) -> RedisCluster3:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()  # never leak nodes when start-up fails half way
            raise

    def _start(self) -> None:
        for port in self.ports:
            node = self.workdir / str(port)
            node.mkdir(parents=True, exist_ok=True)
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            argv += ["--appendonly", "no", "--cluster-enabled", "yes", "--dir", str(node)]
            argv += ["--cluster-config-file", str(node / "nodes.conf")]
            if self.node_timeout_ms is not None:
                argv += ["--cluster-node-timeout", str(self.node_timeout_ms)]
            with (node / "redis.log").open("wb") as log:  # the child keeps its own descriptor
                self._processes[port] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        for port in self.ports:
            _wait_for_ping(port)
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self._wait_until_ok()

    def _wait_until_ok(self, timeout: float = 30.0) -> None:
        """Every node says cluster_state:ok and, with replicas, every replica is in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._state_ok(p) for p in self.live_ports) and self._replicas_linked():
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def _replicas_linked(self) -> bool:
        if not self.replicas:
            return True
        linked = 0
        for port in self.live_ports:
            info = self._ask(port, "INFO", "replication")
            if isinstance(info, dict) and info.get("master_link_status") == "up":
                linked += 1
        return linked >= _MASTERS * self.replicas

    def stop(self) -> None:
        for process in self._processes.values():
            process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    # topology ------------------------------------------------------------------------
    def client(self, port: int) -> Redis:
        """A plain (non-cluster) client of one node."""
        return Redis(port=port, socket_timeout=5, socket_connect_timeout=2)

    def nodes(self, asked: int | None = None) -> list[ClusterNode]:
        """CLUSTER NODES as `asked` (default: the first live node) sees it."""
        port = asked if asked is not None else self.live_ports[0]
        with Redis(port=port, socket_timeout=2, decode_responses=True) as client:
            text = client.execute_command("CLUSTER", "NODES")  # two words: the raw text
        return [_node(line) for line in str(text).splitlines() if line.strip()]

    def key_slot(self, key: str) -> int:
        with Redis(port=self.live_ports[0], socket_timeout=2) as client:
            return int(client.execute_command("CLUSTER", "KEYSLOT", key))

    def master_of(self, key: str, asked: int | None = None) -> int:
        """The port of the master serving `key`'s slot (as `asked` sees it)."""
        return self.slot_owner(self.key_slot(key), asked)

    def slot_owner(self, slot: int, asked: int | None = None) -> int:
        owners = [n for n in self.nodes(asked) if n.is_master and n.owns(slot)]
        if len(owners) != 1:
            raise RuntimeError(f"slot {slot} has {len(owners)} masters: {owners}")
        return owners[0].port

    def replicas_of(self, master: int) -> list[int]:
        nodes = self.nodes()
        ids = [n.node_id for n in nodes if n.port == master]
        return [n.port for n in nodes if ids and n.master_id == ids[0]]

    def masters(self) -> list[int]:
        return [n.port for n in self.nodes() if n.is_master and n.slots and not n.failed]

    def wait_replicated(self, timeout_ms: int = 5000) -> dict[int, int]:
        """WAIT on each master: everything written so far reached its replicas. Returns
        master port -> replicas that acknowledged; raises if one fell short."""
        acknowledged = {}
        for master in self.masters():
            with self.client(master) as client:
                acknowledged[master] = int(
                    client.execute_command("WAIT", self.replicas, timeout_ms)
                )
        short = {m: n for m, n in acknowledged.items() if n < self.replicas}
        if short:
            raise RuntimeError(f"replicas did not acknowledge their masters' writes: {short}")
        return acknowledged

    def kill(self, port: int) -> None:
        """SIGKILL one node (no shutdown, no final write); it stays down."""
        process = self._processes.pop(port)
        process.kill()
        process.wait(timeout=10)
        self.killed.append(port)

    def wait_promoted(self, old_master: int, slot: int, timeout: float = 30.0) -> int:
        """Until every live node names one live master (not `old_master`) for `slot`,
        that master says it is one, and every live node says cluster_state:ok.
        Returns the new master's port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                owners = {self.slot_owner(slot, asked=p) for p in self.live_ports}
            except (RedisError, RuntimeError):
                owners = set()
            if len(owners) == 1 and (new := owners.pop()) != old_master:
                role = self._ask(new, "ROLE")
                is_master = isinstance(role, list) and role and role[0] == "master"
                if is_master and all(self._state_ok(p) for p in self.live_ports):
                    return new
            time.sleep(0.05)
        raise TimeoutError(f"slot {slot} not served by a new master within {timeout}s")

    def _state_ok(self, port: int) -> bool:
        info = self._ask(port, "CLUSTER", "INFO")  # two words: redis-py leaves it unparsed
        return isinstance(info, str) and "cluster_state:ok" in info

    def _ask(self, port: int, *command: str) -> object:
        try:
            with Redis(port=port, socket_timeout=2, decode_responses=True) as client:
                if command[0] == "INFO":
                    return client.info(command[1])
                return client.execute_command(*command)
        except RedisError:
            return None


def _node(line: str) -> ClusterNode:
    # <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
    fields = line.split()
    address = fields[1].split("@", 1)[0]
    slots = []
    for item in fields[8:]:
        if item.startswith("["):  # a slot being migrated: not served here yet
            continue
        low, _, high = item.partition("-")
        slots.append((int(low), int(high or low)))
    return ClusterNode(
        int(address.rsplit(":", 1)[1]),
        fields[0],
        frozenset(fields[2].split(",")),
        fields[3],
        tuple(slots),
    )


def _wait_for_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis node on {port} did not start")  # its log: <workdir>/<port>/redis.log


def _cluster_ports(count: int) -> list[int]:
    """Free ports whose cluster-bus twins (port + 10000) are free too (Redis needs both),
    none of them another's port or twin."""
    ports: list[int] = []
    taken: set[int] = set()
    for _ in range(200 * count):
        port = 20_000 + secrets.randbelow(25_000)
        pair = {port, port + 10_000}
        if not pair & taken and _is_free(port) and _is_free(port + 10_000):
            ports.append(port)
            taken |= pair
            if len(ports) == count:
                return ports
    raise RuntimeError("no free port pairs for the Redis Cluster nodes")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

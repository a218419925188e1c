"""Redis Cluster for real: three masters each with a replica (node timeout 1 s). Under
load, the master serving the audit stream's slot is SIGKILLed; the cluster promotes its
replica by itself and admitd (with a `redis+cluster://` URL) follows. Meanwhile the
stream's slots are unserved and, once the other masters agree the node has failed, the
whole cluster refuses queries (full slot coverage is Redis's default): admitd fails
closed on sessions and spools its audit entries; the spool replays onto the promoted
replica. Before the kill the test waits until every master's replica has
everything (WAIT), so the sessions created before the failover exist on the new master;
the killed master stays down."""

from __future__ import annotations

import asyncio
import re
import time

import yaml

from admitd.sessions.keys import session_key
from admitd.sessions.tokens import parse_session_token
from tests.integration.redis_cluster import RedisCluster3
from tests.reliability.fault_run import Run, note_spool_traffic
from tests.reliability.load import Probe
from tests.reliability.stack import STREAM, ReliabilityStack, StackSettings

__all__ = ["CLUSTER_SETTINGS", "cluster_epilogue", "cluster_failover"]

CLUSTER_SETTINGS = StackSettings(cluster=True)
_VERIFIED = re.compile(r"^ok: (\d+) entries", re.M)  # `admitd audit verify`'s summary


async def cluster_failover(run: Run) -> None:
    cluster = run.stack.cluster
    assert cluster is not None
    stream = _stream_key(run.stack)
    await asyncio.sleep(run.size.warm)
    slot, old = await asyncio.to_thread(_before_kill, run, cluster, stream)
    await asyncio.to_thread(cluster.kill, old)
    killed, run.fault_wall = time.monotonic(), time.time()
    run.fault_end = killed  # the fault does not end: recovery is admitd on the new master
    new = await asyncio.to_thread(cluster.wait_promoted, old, slot)
    promoted = time.monotonic() - killed
    run.facts["promoted_s"] = promoted
    run.facts["promoted_at"] = time.monotonic()
    run.notes.append(
        f"master {old} (audit stream's slot {slot}) SIGKILLed; its replica {new} promoted,"
        f" cluster_state:ok, {promoted:.1f} s after the kill"
    )
    await asyncio.sleep(max(0.0, run.size.hold - promoted))


def cluster_epilogue(run: Run) -> None:
    """How many audited decisions went through the spool; and `admitd audit verify
    --redis-url redis+cluster://...` naming every node as a seed, the dead one too (the
    figures' verify reads the config's own URL, the same list)."""
    cluster = run.stack.cluster
    assert cluster is not None
    note_spool_traffic(run)
    key = str(run.stack.work / "audit-public.pem")
    result = run.stack.admitd_cli(
        "audit", "verify", "--public-key", key, "--redis-url", cluster.url
    )
    run.facts["verify_url_rc"] = result.returncode
    verified = _VERIFIED.search(result.stdout)
    run.facts["verified_entries"] = float(verified.group(1)) if verified else -1.0
    if result.returncode != 0:
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or [""]
        run.notes.append(f"`admitd audit verify --redis-url redis+cluster://...`: {last[0]}")


def _before_kill(run: Run, cluster: RedisCluster3, stream: str) -> tuple[int, int]:
    """WAIT on every master; the stream's slot and master, and what else that master holds."""
    cluster.wait_replicated()
    slot = cluster.key_slot(stream)
    old = cluster.slot_owner(slot)
    run.facts["checkpoints_with_stream"] = float(cluster.master_of(f"{stream}:checkpoints") == old)
    run.facts["sessions_on_killed_master"] = float(
        sum(_served_by(cluster, p, old) for p in run.sessions if not p.must_refuse)
    )
    return slot, old


def _stream_key(stack: ReliabilityStack) -> str:
    """The audit stream key admitd was configured with (its slot decides the master)."""
    audit = yaml.safe_load(stack.config_file.read_text()).get("audit", {})
    return str(audit.get("stream_key", STREAM))


def _served_by(cluster: RedisCluster3, probe: Probe, port: int) -> bool:
    """Whether the session behind `probe`'s bearer token is stored on `port`."""
    ref = parse_session_token(probe.headers["authorization"].removeprefix("Bearer "))
    assert ref is not None, probe.name
    return cluster.master_of(session_key(ref.tag, ref.session_id)) == port

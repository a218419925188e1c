"""Whether Redis may evict admitd's keys.

admitd keeps security state in Redis that must not vanish under memory pressure: the
revocation markers (`revoke_user`: a revoked user's tokens refused), MFA lockouts and used
one-time codes, sessions and the audit stream. A Redis whose `maxmemory-policy` evicts
(`allkeys-*`, or `volatile-*`, which takes keys with a TTL: lockouts and used codes) turns a
revocation into nothing and a lockout into a fresh start, so admitd refuses to start on one
and is not ready while Redis runs one. Only `noeviction` is safe: at its memory limit Redis
refuses writes, and admitd fails closed (and spools its audit entries).
"""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from admitd.errors import ConfigError, StoreUnavailable

__all__ = ["SAFE_POLICY", "eviction_policy", "eviction_problem", "refuse_evicting_redis"]

logger = logging.getLogger("admitd.sessions")

SAFE_POLICY = "noeviction"


async def eviction_policy(client: redis.Redis) -> str | None:
    """`maxmemory-policy` (the evicting one, if a cluster's nodes differ), or None when
    Redis will not say: CONFIG renamed or refused (some managed services), or no answer."""
    try:
        if isinstance(client, RedisCluster):  # every node: one evicting node is enough
            answer = await client.config_get("maxmemory-policy", target_nodes=client.ALL_NODES)
        else:
            answer = await client.config_get("maxmemory-policy")
    except StoreUnavailable:
        return None
    policies = sorted(_policies(answer))
    evicting = [policy for policy in policies if policy != SAFE_POLICY]
    chosen = evicting or policies
    return chosen[0] if chosen else None


def eviction_problem(policy: str | None) -> str | None:
    if policy is None or policy == SAFE_POLICY:
        return None
    return (
        f"Redis maxmemory-policy is {policy}: under memory pressure Redis would evict "
        "revocation markers, MFA lockouts and audit entries"
    )


async def refuse_evicting_redis(client: redis.Redis | None) -> None:
    """At start-up: a ConfigError when Redis evicts; a warning when it will not say."""
    if client is None:
        return
    policy = await eviction_policy(client)
    problem = eviction_problem(policy)
    if problem is not None:
        raise ConfigError(
            problem,
            key="redis_url",
            fix="set maxmemory-policy noeviction on that Redis (redis.conf, or CONFIG SET "
            "maxmemory-policy noeviction) and give it the memory admitd needs",
        )
    if policy is None:
        logger.warning(
            "could not read Redis maxmemory-policy (CONFIG GET refused, or Redis not "
            "answering); admitd needs noeviction: an evicting Redis loses revocations"
        )


def _policies(answer: object) -> set[str]:
    """Every `maxmemory-policy` value in a CONFIG GET reply (a cluster client may nest
    the replies of its nodes)."""
    if not isinstance(answer, dict):
        return set()
    found = set()
    for key, value in answer.items():
        if key in ("maxmemory-policy", b"maxmemory-policy"):
            found.add(value.decode() if isinstance(value, bytes) else str(value))
        else:
            found |= _policies(value)
    return found

"""`admitd.v1.Risk` for real: grpc.aio over mutual TLS, Redis behind it, two admins."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from admitd._proto import risk_pb2 as pb
from admitd._proto import risk_pb2_grpc
from admitd.admin.config import AdminConfig
from admitd.admin.server import server_credentials
from admitd.envelope import Sealer
from admitd.kms import DEFAULT_ALIASES, MemoryKms
from admitd.pki import Issued
from admitd.risk.baseline import BaselineStore
from admitd.risk.servicer import risk_handler
from admitd.risk.state import RiskStateStore
from admitd.sessions.redis_client import client_from_url
from tests.integration.redis_server import RedisServer, free_port, has_redis_server
from tests.pki_fixtures import PkiSet

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not has_redis_server(), reason="redis-server not installed"),
]

ALICE = "spiffe://test.example/user/alice"
BOB = "spiffe://test.example/user/bob"


class Audit:
    def __init__(self) -> None:
        self.types: list[str] = []

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        self.types.append(event_type)


@dataclass
class Api:
    address: str
    pki: PkiSet
    audit: Audit

    @contextlib.asynccontextmanager
    async def stub(self, leaf: Issued) -> AsyncIterator[risk_pb2_grpc.RiskStub]:
        root = (self.pki.directory / "root.pem").read_bytes()
        chain = leaf.cert_pem + self.pki.client_ca.cert_pem
        credentials = grpc.ssl_channel_credentials(root, leaf.key_pem, chain)
        async with grpc.aio.secure_channel(self.address, credentials) as channel:
            yield risk_pb2_grpc.RiskStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture
async def api(pki: PkiSet, redis_server: RedisServer) -> AsyncIterator[Api]:
    client = client_from_url(redis_server.url)
    await client.flushdb()
    audit = Audit()
    state = RiskStateStore(
        client, Sealer(MemoryKms.with_aliases(DEFAULT_ALIASES)), retention_seconds=600
    )
    baselines = BaselineStore(client, state, audit)
    config = AdminConfig(
        server_cert=pki.directory / "server.pem",
        server_key=pki.directory / "server.key",
        principals=frozenset({ALICE, BOB}),
        listen=f"127.0.0.1:{free_port()}",
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((risk_handler(baselines, config.principals),))
    server.add_secure_port(config.listen, server_credentials(config, [pki.trust_bundle]))
    await server.start()
    yield Api(config.listen, pki, audit)
    await server.stop(None)
    await client.aclose()


REQUEST = pb.RequestOverrideRequest(
    kind=pb.OVERRIDE_KIND_EXTEND_BASELINE,
    organisation="acme",
    reason="browser rollout",
    attribute=pb.BASELINE_ATTRIBUTE_BROWSER_FAMILY,
    value="firefox",
)


async def test_request_by_one_admin_approve_by_another(api: Api) -> None:
    async with api.stub(api.pki.alice) as alice, api.stub(api.pki.bob) as bob:
        requested = (await alice.RequestOverride(REQUEST)).override
        assert (requested.requested_by, requested.status) == (ALICE, pb.OVERRIDE_STATUS_PENDING)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await alice.ApproveOverride(
                pb.ApproveOverrideRequest(override_id=requested.override_id)
            )
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert "different admin" in (info.value.details() or "")
        baseline = await bob.GetBaseline(pb.GetBaselineRequest(organisation="acme"))
        assert list(baseline.browser_families) == []
        approved = (
            await bob.ApproveOverride(pb.ApproveOverrideRequest(override_id=requested.override_id))
        ).override
        assert (approved.approved_by, approved.status) == (BOB, pb.OVERRIDE_STATUS_APPROVED)
        baseline = await bob.GetBaseline(pb.GetBaselineRequest(organisation="acme"))
        assert list(baseline.browser_families) == ["firefox"]
        assert (baseline.threshold, baseline.threshold_overridden) == (0.5, False)
        listed = await alice.ListOverrides(pb.ListOverridesRequest(organisation="acme"))
        assert [o.override_id for o in listed.overrides] == [requested.override_id]
    assert api.audit.types == [
        "risk.override.requested",
        "risk.override.refused",
        "risk.override.approved",
    ]


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (
            pb.RequestOverrideRequest(organisation="acme", reason="r"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.RequestOverrideRequest(
                kind=pb.OVERRIDE_KIND_TRUST_DEVICE, organisation="acme", reason="r", user_id="u"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.RequestOverrideRequest(
                kind=pb.OVERRIDE_KIND_RAISE_THRESHOLD,
                organisation="acme",
                reason="r",
                threshold=0.2,
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ],
    ids=["no-kind", "no-device", "lowering"],
)
async def test_bad_requests(
    api: Api, request_: pb.RequestOverrideRequest, code: grpc.StatusCode
) -> None:
    async with api.stub(api.pki.alice) as alice:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await alice.RequestOverride(request_)
    assert info.value.code() is code


async def test_unknown_override_is_not_found(api: Api) -> None:
    async with api.stub(api.pki.bob) as bob:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await bob.ApproveOverride(pb.ApproveOverrideRequest(override_id="0123456789abcdef"))
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_certificate_not_in_admin_principals_is_refused(api: Api) -> None:
    async with api.stub(api.pki.proxy) as proxy:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await proxy.RequestOverride(REQUEST)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert api.audit.types == []

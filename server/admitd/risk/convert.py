"""`admitd.v1.Risk` messages <-> typed values; nothing else in the risk package sees protobuf."""

from __future__ import annotations

from admitd._proto import risk_pb2 as pb
from admitd.risk.errors import InvalidRequest
from admitd.risk.model import BaselineAttribute, OrgBaseline
from admitd.risk.overrides import Override, OverrideKind, OverrideRequest, OverrideStatus

__all__ = [
    "baseline_response_from_baseline",
    "override_request_from_proto",
    "proto_from_override",
]

_KINDS = {
    OverrideKind.TRUST_DEVICE: pb.OVERRIDE_KIND_TRUST_DEVICE,
    OverrideKind.RAISE_THRESHOLD: pb.OVERRIDE_KIND_RAISE_THRESHOLD,
    OverrideKind.EXTEND_BASELINE: pb.OVERRIDE_KIND_EXTEND_BASELINE,
}
_STATUSES = {
    OverrideStatus.PENDING: pb.OVERRIDE_STATUS_PENDING,
    OverrideStatus.APPROVED: pb.OVERRIDE_STATUS_APPROVED,
    OverrideStatus.EXPIRED: pb.OVERRIDE_STATUS_EXPIRED,
}
_ATTRIBUTES = {
    BaselineAttribute.OS_FAMILY: pb.BASELINE_ATTRIBUTE_OS_FAMILY,
    BaselineAttribute.BROWSER_FAMILY: pb.BASELINE_ATTRIBUTE_BROWSER_FAMILY,
    BaselineAttribute.DEVICE_ID: pb.BASELINE_ATTRIBUTE_DEVICE_ID,
}
_KIND_FROM_PROTO = {v: k for k, v in _KINDS.items()}
_ATTRIBUTE_FROM_PROTO = {v: k for k, v in _ATTRIBUTES.items()}


def override_request_from_proto(request: pb.RequestOverrideRequest) -> OverrideRequest:
    kind = _KIND_FROM_PROTO.get(request.kind)
    if kind is None:
        raise InvalidRequest("kind must be trust_device, raise_threshold or extend_baseline")
    return OverrideRequest(
        kind=kind,
        organisation=request.organisation,
        reason=request.reason,
        user_id=request.user_id,
        device_id=request.device_id,
        threshold=request.threshold if request.HasField("threshold") else None,
        attribute=_ATTRIBUTE_FROM_PROTO.get(request.attribute),
        value=request.value,
    )


def proto_from_override(override: Override) -> pb.Override:
    r = override.request
    message = pb.Override(
        override_id=override.override_id,
        kind=_KINDS[r.kind],
        organisation=r.organisation,
        reason=r.reason,
        user_id=r.user_id,
        device_id=r.device_id,
        attribute=_ATTRIBUTES.get(r.attribute, pb.BASELINE_ATTRIBUTE_UNSPECIFIED)
        if r.attribute is not None
        else pb.BASELINE_ATTRIBUTE_UNSPECIFIED,
        value=r.value,
        requested_by=override.requested_by,
        requested_at=override.requested_at,
        expires_at=override.expires_at,
        status=_STATUSES[override.status],
        approved_by=override.approved_by,
        applied=override.applied,
    )
    if r.threshold is not None:
        message.threshold = r.threshold
    if override.approved_at is not None:
        message.approved_at = override.approved_at
    return message


def baseline_response_from_baseline(
    baseline: OrgBaseline, default_threshold: float
) -> pb.GetBaselineResponse:
    return pb.GetBaselineResponse(
        organisation=baseline.organisation,
        os_families=sorted(baseline.os_families),
        browser_families=sorted(baseline.browser_families),
        device_ids=sorted(baseline.device_ids),
        threshold=baseline.threshold if baseline.threshold is not None else default_threshold,
        threshold_overridden=baseline.threshold is not None,
    )

"""`admitd risk`: request and approve dual-control overrides, list them, show a baseline.

Connects with mutual TLS (--cert/--key/--ca) to `admin.listen`; the certificate is
who you are: the admin who requested an override cannot approve it.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from admitd._proto import risk_pb2 as pb
from admitd._proto import risk_pb2_grpc
from admitd.admin.client import AdminClient, ClientTls, mtls_client_options

__all__ = ["RiskClient", "register"]

_KINDS = {
    "trust-device": pb.OVERRIDE_KIND_TRUST_DEVICE,
    "raise-threshold": pb.OVERRIDE_KIND_RAISE_THRESHOLD,
    "extend-baseline": pb.OVERRIDE_KIND_EXTEND_BASELINE,
}
_ATTRIBUTES = {
    "os_family": pb.BASELINE_ATTRIBUTE_OS_FAMILY,
    "browser_family": pb.BASELINE_ATTRIBUTE_BROWSER_FAMILY,
    "device_id": pb.BASELINE_ATTRIBUTE_DEVICE_ID,
}


class RiskClient(AdminClient):
    """The admin client with `admitd.v1.Risk` as its stub."""

    def __init__(self, address: str, tls: ClientTls) -> None:
        super().__init__(address, tls)
        self.stub = risk_pb2_grpc.RiskStub(self._channel)  # type: ignore[no-untyped-call]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `risk` command and its sub-commands to the `admitd` parser."""
    common = mtls_client_options()
    risk = commands.add_parser("risk", help="device-risk overrides and baselines (admin API)")
    risk.description = __doc__
    sub = risk.add_subparsers(dest="risk_command", required=True, metavar="SUBCOMMAND")

    request = sub.add_parser(
        "request", parents=[common], allow_abbrev=False, help="request an override"
    )
    request.add_argument("kind", choices=sorted(_KINDS))
    request.add_argument("--org", required=True, help="organisation")
    request.add_argument("--reason", required=True, help="why (goes into the audit log)")
    request.add_argument("--user", default="", help="trust-device: user ID")
    request.add_argument("--device", default="", help="trust-device: device ID")
    request.add_argument("--threshold", type=float, default=None, help="raise-threshold: 0..1")
    request.add_argument("--attribute", choices=sorted(_ATTRIBUTES), help="extend-baseline")
    request.add_argument("--value", default="", help="extend-baseline: the trusted value")
    request.set_defaults(handler=_request)

    approve = sub.add_parser(
        "approve", parents=[common], allow_abbrev=False, help="approve another admin's override"
    )
    approve.add_argument("override_id")
    approve.set_defaults(handler=_approve)

    listing = sub.add_parser("list", parents=[common], allow_abbrev=False, help="list overrides")
    listing.add_argument("--org", default="", help="only this organisation")
    listing.add_argument("--pending", action="store_true", help="only pending overrides")
    listing.set_defaults(handler=_list)

    baseline = sub.add_parser(
        "baseline", parents=[common], allow_abbrev=False, help="an organisation's baseline"
    )
    baseline.add_argument("--org", required=True)
    baseline.set_defaults(handler=_baseline)


def _client(args: argparse.Namespace) -> RiskClient:
    return RiskClient(args.address, ClientTls(args.cert, args.key, args.ca, args.server_name))


def request_from_args(args: argparse.Namespace) -> pb.RequestOverrideRequest:
    request = pb.RequestOverrideRequest(
        kind=_KINDS[args.kind],
        organisation=args.org,
        reason=args.reason,
        user_id=args.user,
        device_id=args.device,
        attribute=_ATTRIBUTES.get(args.attribute or "", pb.BASELINE_ATTRIBUTE_UNSPECIFIED),
        value=args.value,
    )
    if args.threshold is not None:
        request.threshold = args.threshold
    return request


def _request(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.call(client.stub.RequestOverride, request_from_args(args))
    print(line_from_override(response.override))
    print(f"a different admin must run: admitd risk approve {response.override.override_id}")
    return 0


def _approve(args: argparse.Namespace) -> int:
    request = pb.ApproveOverrideRequest(override_id=args.override_id)
    with _client(args) as client:
        response = client.call(client.stub.ApproveOverride, request)
    print(line_from_override(response.override))
    return 0


def _list(args: argparse.Namespace) -> int:
    request = pb.ListOverridesRequest(organisation=args.org, pending_only=args.pending)
    with _client(args) as client:
        response = client.call(client.stub.ListOverrides, request)
    for override in response.overrides:
        print(line_from_override(override))
    return 0


def _baseline(args: argparse.Namespace) -> int:
    with _client(args) as client:
        b = client.call(client.stub.GetBaseline, pb.GetBaselineRequest(organisation=args.org))
    source = "override" if b.threshold_overridden else "default"
    print(f"organisation\t{b.organisation}\nthreshold\t{b.threshold} ({source})")
    print(
        f"os_families\t{','.join(b.os_families)}\nbrowser_families\t{','.join(b.browser_families)}"
    )
    print(f"device_ids\t{','.join(b.device_ids)}")
    return 0


def line_from_override(o: pb.Override) -> str:
    kind = pb.OverrideKind.Name(o.kind).removeprefix("OVERRIDE_KIND_").lower()
    status = pb.OverrideStatus.Name(o.status).removeprefix("OVERRIDE_STATUS_").lower()
    target = {
        pb.OVERRIDE_KIND_TRUST_DEVICE: f"user={o.user_id} device={o.device_id}",
        pb.OVERRIDE_KIND_RAISE_THRESHOLD: f"threshold={o.threshold}",
    }.get(o.kind, f"{pb.BaselineAttribute.Name(o.attribute).lower()}={o.value}")
    approved = f"\tapproved_by={o.approved_by}" if o.approved_by else ""
    return (
        f"{o.override_id}\t{status}\t{kind}\torg={o.organisation}\t{target}"
        f"\trequested_by={o.requested_by}\tat={_time(o.requested_at)}{approved}\treason={o.reason}"
    )


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")

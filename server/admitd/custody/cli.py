"""`admitd keys request|approve|changes|list-remote`: key custody over the admin API.

`request provider --config NEW.yaml` asks to approve the KMS provider of NEW.yaml's
`kms:` section (where keys live; never a PIN): once approved, admitd starts with it.

Connects with mutual TLS (--cert/--key/--ca) to `admin.listen`; the certificate is
who you are (it must be in keys.custodians). `request` and `approve` also send your
own admitd session token (--session-token-file, or - for stdin; never on the command
line), whose last step-up must be a passkey within keys.mfa_max_age_seconds.
Nothing here can print key material: the API has none to give.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from admitd._proto import keys_pb2 as pb
from admitd._proto import keys_pb2_grpc
from admitd.admin.client import AdminClient, ClientTls, mtls_client_options
from admitd.errors import ConfigError

__all__ = ["KeysClient", "register_remote"]

KINDS = {
    "rotate": pb.KEY_CHANGE_KIND_ROTATE,
    "retire": pb.KEY_CHANGE_KIND_RETIRE,
    "reencrypt": pb.KEY_CHANGE_KIND_REENCRYPT,
    "provider": pb.KEY_CHANGE_KIND_PROVIDER,
}


class KeysClient(AdminClient):
    """The admin client with `admitd.v1.Keys` as its stub."""

    def __init__(self, address: str, tls: ClientTls) -> None:
        super().__init__(address, tls)
        self.stub = keys_pb2_grpc.KeysStub(self._channel)  # type: ignore[no-untyped-call]


def register_remote(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the admin-API sub-commands to `admitd keys`."""
    common = mtls_client_options()
    request = sub.add_parser(
        "request",
        parents=[common],
        allow_abbrev=False,
        help="request a key change (a different custodian approves it)",
        description=__doc__,
    )
    request.add_argument("kind", choices=sorted(KINDS))
    request.add_argument("--alias", default="", help="e.g. kms/session-secrets (not provider)")
    request.add_argument("--version", type=int, default=0, help="retire: the version to destroy")
    request.add_argument(
        "--config",
        type=Path,
        help="provider: the admitd YAML the replicas will run; its kms: section is approved",
    )
    request.add_argument("--reason", required=True, help="why (goes into the audit log)")
    _token(request)
    request.set_defaults(handler=_request)

    approve = sub.add_parser(
        "approve",
        parents=[common],
        allow_abbrev=False,
        help="approve another custodian's key change; admitd applies it",
        description=__doc__,
    )
    approve.add_argument("change_id")
    _token(approve)
    approve.set_defaults(handler=_approve)

    changes = sub.add_parser(
        "changes", parents=[common], allow_abbrev=False, help="list key change requests"
    )
    changes.add_argument("--pending", action="store_true", help="only pending changes")
    changes.set_defaults(handler=_changes)

    listing = sub.add_parser(
        "list-remote",
        parents=[common],
        allow_abbrev=False,
        help="list aliases and key versions of the running deployment",
    )
    listing.set_defaults(handler=_list_remote)


def _token(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--session-token-file",
        type=Path,
        required=True,
        help="file holding your admitd session token (- for stdin)",
    )


def _client(args: argparse.Namespace) -> KeysClient:
    return KeysClient(args.address, ClientTls(args.cert, args.key, args.ca, args.server_name))


def read_token(path: Path) -> str:
    try:
        token = sys.stdin.read() if str(path) == "-" else path.read_text()
    except OSError as exc:
        # Not the file name: someone may have passed the token itself by mistake.
        raise ConfigError(
            f"cannot read the session token: {exc.strerror}", key="--session-token-file"
        ) from None
    return token.strip()


def _request(args: argparse.Namespace) -> int:
    settings = ""
    if args.kind == "provider":
        if args.config is None or args.alias:
            raise ConfigError(
                "a provider change takes --config NEW.yaml (its kms: section), no --alias",
                key="--config",
            )
        settings = provider_settings_of(args.config)
    elif not args.alias:
        raise ConfigError(f"{args.kind} needs --alias (e.g. kms/session-secrets)", key="--alias")
    elif args.config is not None:
        raise ConfigError("--config is for provider changes only", key="--config")
    request = pb.RequestKeyChangeRequest(
        kind=KINDS[args.kind],
        alias=args.alias,
        version=args.version,
        reason=args.reason,
        session_token=read_token(args.session_token_file),
        provider_settings=settings,
    )
    with _client(args) as client:
        response = client.call(client.stub.RequestKeyChange, request)
    print(line_from_change(response.change))
    print(f"a different custodian must run: admitd keys approve {response.change.change_id}")
    return 0


def provider_settings_of(config: Path) -> str:
    """The canonical provider settings of `config`'s kms: section (never its secrets)."""
    # Imported here: the config loader is only needed for provider changes.
    from admitd.cli_setup import config_file
    from admitd.custody.provider import settings_from_config

    return settings_from_config(config_file(config).kms()).canonical()


def _approve(args: argparse.Namespace) -> int:
    request = pb.ApproveKeyChangeRequest(
        change_id=args.change_id, session_token=read_token(args.session_token_file)
    )
    with _client(args) as client:
        response = client.call(client.stub.ApproveKeyChange, request)
    print(line_from_change(response.change))
    return 1 if response.change.status == pb.KEY_CHANGE_STATUS_FAILED else 0


def _changes(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.call(
            client.stub.ListKeyChanges, pb.ListKeyChangesRequest(pending_only=args.pending)
        )
    for change in response.changes:
        print(line_from_change(change))
    return 0


def _list_remote(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.call(client.stub.ListKeys, pb.ListKeysRequest())
    for v in response.versions:
        state = pb.KeyState.Name(v.state).removeprefix("KEY_STATE_").lower().replace("_", "-")
        print(f"{v.alias}\tv{v.version}\t{state}\t{v.created or '-'}")
    return 0


def line_from_change(c: pb.KeyChange) -> str:
    kind = pb.KeyChangeKind.Name(c.kind).removeprefix("KEY_CHANGE_KIND_").lower()
    status = pb.KeyChangeStatus.Name(c.status).removeprefix("KEY_CHANGE_STATUS_").lower()
    target = f"{c.alias} v{c.version}" if c.kind == pb.KEY_CHANGE_KIND_RETIRE else c.alias
    if c.kind == pb.KEY_CHANGE_KIND_PROVIDER:
        target = f"{c.provider_summary} fingerprint={c.provider_fingerprint}"
    parts = [
        c.change_id,
        status,
        kind,
        target,
        f"requested_by={c.requested_by} ({c.requested_user})",
        f"at={_time(c.requested_at)}",
        f"expires={_time(c.expires_at)}",
    ]
    if c.approved_by:
        parts.append(f"approved_by={c.approved_by} ({c.approved_user})")
    if c.result:
        parts.append(f"result={c.result}")
    if c.error:
        parts.append(f"error={c.error}")
    parts.append(f"reason={c.reason}")
    return "\t".join(parts)


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")

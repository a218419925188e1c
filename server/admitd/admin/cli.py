"""`admitd sessions`: create, list and revoke sessions, enrol and verify TOTP, over the admin API.

Connects with mutual TLS (--cert/--key/--ca) to `admin.listen`. A session token
is printed once, by `create`, on stdout alone; commands that take a token read
it from a file or stdin (`--token-file -`), never from the command line, where
it would end up in shell history and process listings.
"""

from __future__ import annotations

import argparse
import base64
import sys
from datetime import UTC, datetime
from pathlib import Path

from admitd._proto import sessions_pb2 as pb
from admitd.admin.client import AdminClient, ClientTls, mtls_client_options
from admitd.admin.convert import mfa_result_from_proto
from admitd.admin.printed_commands import CODE, admitd_program, shell_line
from admitd.errors import ConfigError
from admitd.mfa.ports import MfaResult

__all__ = ["create_request_from_args", "register", "totp_confirm_line"]

_METHODS = {"totp": pb.MFA_METHOD_TOTP, "passkey": pb.MFA_METHOD_PASSKEY}
_DEFAULT_ENROLMENT_GRANT = 600


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `sessions` command and its sub-commands to the `admitd` parser."""
    common = mtls_client_options()
    sessions = commands.add_parser("sessions", help="sessions and TOTP via the admin API")
    sessions.description = __doc__
    sub = sessions.add_subparsers(dest="sessions_command", required=True, metavar="SUBCOMMAND")
    _add_session_commands(sub, common)
    _add_totp_commands(sub, common)


def _add_session_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    create = sub.add_parser(
        "create", parents=[common], allow_abbrev=False, help="create a session; prints its token"
    )
    _user(create, org=True)
    create.add_argument("--role", action="append", default=[], help="repeat for several roles")
    create.add_argument("--device", required=True, help="device ID")
    for name in ("user-agent", "ip", "geo"):
        create.add_argument(f"--{name}", default=None, help="device telemetry")
    create.add_argument("--mfa-verified-at", type=float, default=None, help="Unix seconds")
    create.add_argument("--mfa-method", choices=sorted(_METHODS), default=None)
    create.add_argument(
        "--enrolment-grant",
        type=int,
        nargs="?",
        const=_DEFAULT_ENROLMENT_GRANT,
        default=None,
        metavar="SECONDS",
        help="the user has no second factor yet: let this session add its first passkey"
        f" on the step-up page within SECONDS (default {_DEFAULT_ENROLMENT_GRANT}; single use)",
    )
    create.set_defaults(handler=_create)

    listing = sub.add_parser(
        "list", parents=[common], allow_abbrev=False, help="a user's sessions (never tokens)"
    )
    _user(listing)
    listing.set_defaults(handler=_list)

    revoke = sub.add_parser(
        "revoke", parents=[common], allow_abbrev=False, help="revoke one session"
    )
    _target(revoke)
    revoke.set_defaults(handler=_revoke)

    revoke_user = sub.add_parser(
        "revoke-user", parents=[common], allow_abbrev=False, help="revoke all of a user's"
    )
    _user(revoke_user)
    revoke_user.set_defaults(handler=_revoke_user)

    verify = sub.add_parser(
        "verify", parents=[common], allow_abbrev=False, help="verify a TOTP code for a session"
    )
    _target(verify)
    verify.add_argument("--code", required=True)
    verify.set_defaults(handler=_verify)


def _add_totp_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    enrol = sub.add_parser(
        "totp-enrol", parents=[common], allow_abbrev=False, help="start TOTP enrolment"
    )
    _user(enrol, org=True)
    enrol.add_argument("--qr-png", type=Path, help="also write the QR code to this PNG file")
    enrol.set_defaults(handler=_totp_enrol)

    confirm = sub.add_parser(
        "totp-confirm", parents=[common], allow_abbrev=False, help="activate with a first code"
    )
    _user(confirm, org=True)
    confirm.add_argument("--code", required=True)
    confirm.set_defaults(handler=_totp_confirm)


def _user(parser: argparse.ArgumentParser, *, org: bool = False) -> None:
    parser.add_argument("--user", required=True, help="user ID")
    if org:
        parser.add_argument("--org", required=True, help="organisation")


def _target(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--token-file", type=Path, help="file holding the token ('-': stdin)")
    group.add_argument("--session-id", help="a session ID from `list` (with --user)")
    parser.add_argument("--user", help="user ID (with --session-id)")


def _client(args: argparse.Namespace) -> AdminClient:
    return AdminClient(args.address, ClientTls(args.cert, args.key, args.ca, args.server_name))


def create_request_from_args(args: argparse.Namespace) -> pb.CreateSessionRequest:
    if (args.mfa_verified_at is None) != (args.mfa_method is None):
        raise ConfigError("--mfa-verified-at and --mfa-method go together")
    return pb.CreateSessionRequest(
        user_id=args.user,
        organisation=args.org,
        roles=args.role,
        device_id=args.device,
        user_agent=args.user_agent,
        ip=args.ip,
        geo=args.geo,
        mfa_verified_at=args.mfa_verified_at,
        mfa_method=_METHODS.get(args.mfa_method or "", pb.MFA_METHOD_UNSPECIFIED),
        enrolment_grant_seconds=args.enrolment_grant,
    )


def _create(args: argparse.Namespace) -> int:
    request = create_request_from_args(args)
    with _client(args) as client:
        response = client.call(client.stub.CreateSession, request)
    print(response.session_token)
    print(
        f"session {response.session_id} expires {_time(response.expires_at)}"
        f" (idle timeout {response.idle_timeout:.0f}s)",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.call(
            client.stub.ListUserSessions, pb.ListUserSessionsRequest(user_id=args.user)
        )
    factors = ", ".join(
        pb.MfaMethod.Name(f).removeprefix("MFA_METHOD_").lower() for f in response.factors
    )
    print(f"factors: {factors or 'none'}")
    for s in response.sessions:
        mfa = _time(s.mfa_verified_at) if s.HasField("mfa_verified_at") else "never"
        state = "expired" if s.expired else "active"
        print(
            f"{s.session_id}\t{state}\tdevice={s.device_id}\troles={','.join(s.roles)}"
            f"\tcreated={_time(s.created_at)}\tlast_seen={_time(s.last_seen_at)}\tmfa={mfa}"
        )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    request = pb.RevokeSessionRequest()
    _set_target(request, args)
    with _client(args) as client:
        response = client.call(client.stub.RevokeSession, request)
    print("revoked" if response.revoked else "no such session (already revoked or expired)")
    return 0 if response.revoked else 1


def _revoke_user(args: argparse.Namespace) -> int:
    request = pb.RevokeUserSessionsRequest(user_id=args.user)
    with _client(args) as client:
        response = client.call(client.stub.RevokeUserSessions, request)
    print(f"revoked {response.revoked} session(s)")
    return 0


def _totp_enrol(args: argparse.Namespace) -> int:
    request = pb.BeginTotpEnrolmentRequest(user_id=args.user, organisation=args.org)
    with _client(args) as client:
        response = client.call(client.stub.BeginTotpEnrolment, request)
    if args.qr_png is not None:
        args.qr_png.write_bytes(base64.b64decode(response.qr_png_base64))
    # The URI holds the secret: it goes to the operator's terminal only, never a log.
    print(response.provisioning_uri)
    print(
        "add it to an authenticator app, then confirm with its current code:\n"
        f"  {totp_confirm_line(args)}",
        file=sys.stderr,
    )
    return 0


def totp_confirm_line(args: argparse.Namespace) -> str:
    """The complete `totp-confirm` for a `totp-enrol`: same admin API, same user, `CODE` to fill."""
    argv = [*admitd_program(), "sessions", "totp-confirm", *_connection_argv(args)]
    return shell_line([*argv, "--user", args.user, "--org", args.org, "--code", CODE])


def _connection_argv(args: argparse.Namespace) -> list[str]:
    """The --address/--cert/--key/--ca (and --server-name) this command was given."""
    argv = ["--address", args.address, "--cert", str(args.cert), "--key", str(args.key)]
    argv += ["--ca", str(args.ca)]
    return argv + (["--server-name", args.server_name] if args.server_name else [])


def _totp_confirm(args: argparse.Namespace) -> int:
    request = pb.ConfirmTotpEnrolmentRequest(
        user_id=args.user, organisation=args.org, code=args.code
    )
    with _client(args) as client:
        response = client.call(client.stub.ConfirmTotpEnrolment, request)
    return _report(mfa_result_from_proto(response.result))


def _verify(args: argparse.Namespace) -> int:
    request = pb.VerifyMfaRequest(code=args.code)
    _set_target(request, args)
    with _client(args) as client:
        response = client.call(client.stub.VerifyMfa, request)
    code = _report(mfa_result_from_proto(response.result))
    if response.HasField("mfa_verified_at"):
        print(f"mfa_verified_at {_time(response.mfa_verified_at)}")
    return code


def _set_target(
    request: pb.RevokeSessionRequest | pb.VerifyMfaRequest, args: argparse.Namespace
) -> None:
    if args.session_id is not None:
        if not args.user:
            raise ConfigError("--session-id needs --user")
        request.session.user_id, request.session.session_id = args.user, args.session_id
        return
    source = sys.stdin if str(args.token_file) == "-" else None
    try:
        token = source.read() if source else args.token_file.read_text()
    except OSError as exc:
        # Not the file name: someone may have passed the token itself by mistake.
        raise ConfigError(f"cannot read the token: {exc.strerror}", key="--token-file") from None
    request.session_token = token.strip()


def _report(result: MfaResult | None) -> int:
    print(result.value if result is not None else "unknown result")
    return 0 if result is MfaResult.OK else 1


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")

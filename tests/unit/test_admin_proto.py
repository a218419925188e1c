"""The committed generated code, the proto <-> typed converters, and the CLI's arguments."""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from admitd._proto import sessions_pb2 as pb
from admitd.admin.cli import _set_target, create_request_from_args, register
from admitd.admin.convert import (
    mfa_result_from_proto,
    new_session_from_request,
    proto_from_mfa_result,
    ref_from_target,
    session_info_from_session,
)
from admitd.admin.errors import InvalidRequest
from admitd.errors import ConfigError
from admitd.mfa.ports import MfaResult
from admitd.sessions.model import MfaMethod
from admitd.sessions.tokens import new_session_token, user_tag
from tests.sessions import make_session

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "server" / "admitd" / "_proto"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_committed_generated_code_matches_gen_proto(tmp_path: Path) -> None:
    out = tmp_path / "_proto"
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen-proto.sh"), str(out)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in GENERATED.iterdir() if p.suffix in (".py", ".pyi"))
    _, mismatch, errors = filecmp.cmpfiles(out, GENERATED, names, shallow=False)
    assert (mismatch, errors) == ([], []), "run scripts/gen-proto.sh and commit the result"


def test_no_response_message_can_carry_a_token_except_create() -> None:
    for name, message in pb.DESCRIPTOR.message_types_by_name.items():
        if name.endswith("Response") and name != "CreateSessionResponse":
            assert not [f for f in message.fields if "token" in f.name], name
    assert not [f for f in pb.SessionInfo.DESCRIPTOR.fields if "token" in f.name]


def test_every_mfa_result_has_a_wire_value() -> None:
    for result in MfaResult:
        assert mfa_result_from_proto(proto_from_mfa_result(result)) is result
    assert mfa_result_from_proto(pb.MFA_RESULT_UNSPECIFIED) is None


def test_create_request_conversion() -> None:
    request = pb.CreateSessionRequest(
        user_id="u", organisation="o", roles=["admin", "admin"], device_id="d", ip="192.0.2.1"
    )
    new = new_session_from_request(request)
    assert (new.roles, new.telemetry.ip, new.telemetry.user_agent) == ({"admin"}, "192.0.2.1", None)
    assert new.mfa_verified_at is None and new.mfa_method is None
    request.mfa_verified_at = 0.0  # present, even though zero
    with pytest.raises(InvalidRequest, match="needs mfa_method"):
        new_session_from_request(request)
    request.mfa_method = pb.MFA_METHOD_PASSKEY
    assert new_session_from_request(request).mfa_method is MfaMethod.PASSKEY


def test_create_request_enrolment_grant() -> None:
    request = pb.CreateSessionRequest(user_id="u", organisation="o", device_id="d")
    assert new_session_from_request(request).enrolment_grant_seconds is None
    request.enrolment_grant_seconds = 0  # present, even though zero: refused later
    assert new_session_from_request(request).enrolment_grant_seconds == 0
    request.enrolment_grant_seconds = 600
    assert new_session_from_request(request).enrolment_grant_seconds == 600


@pytest.mark.parametrize(
    ("flags", "expected"),
    [([], None), (["--enrolment-grant"], 600), (["--enrolment-grant", "120"], 120)],
    ids=["none", "default", "explicit"],
)
def test_cli_create_enrolment_grant(flags: list[str], expected: int | None) -> None:
    argv = ["sessions", "create", *TLS, "--user", "u", "--org", "o", "--device", "d", *flags]
    request = create_request_from_args(parse(argv))
    has = request.HasField("enrolment_grant_seconds")
    assert (request.enrolment_grant_seconds if has else None) == expected


def test_session_targets() -> None:
    token, ref = new_session_token("u-1")
    assert ref_from_target(pb.RevokeSessionRequest(session_token=token)) == ref
    by_id = pb.VerifyMfaRequest(
        session=pb.SessionSelector(user_id="u-1", session_id=ref.session_id)
    )
    assert ref_from_target(by_id) == ref
    with pytest.raises(InvalidRequest, match="name the session"):
        ref_from_target(pb.RevokeSessionRequest())


def test_session_info_reports_the_earlier_expiry() -> None:
    # Idle expiry would be 200 + 50 = 250; the absolute one, 230, comes first.
    session = make_session(
        "a" * 64,
        user_id="u",
        organisation="o",
        roles={"b", "a"},
        device_id="d",
        now=200.0,
        created_ago=100.0,
        idle_timeout=50.0,
        expires_in=30.0,
    )
    info = session_info_from_session(session, now=240.0)
    assert (info.idle_expires_at, info.absolute_expires_at, info.expired) == (230.0, 230.0, True)
    assert list(info.roles) == ["a", "b"] and not info.HasField("mfa_verified_at")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="admitd")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


TLS = ["--cert", "c.pem", "--key", "c.key", "--ca", "ca.pem"]


def test_cli_create_arguments() -> None:
    args = parse(
        [
            *("sessions", "create", *TLS, "--user", "u", "--org", "o", "--role", "admin"),
            *("--role", "finance", "--device", "d", "--ip", "192.0.2.1"),
        ]
    )
    assert (args.role, args.ip, args.user_agent, args.address) == (
        ["admin", "finance"],
        "192.0.2.1",
        None,
        "127.0.0.1:9443",
    )


def test_cli_never_takes_a_token_on_the_command_line() -> None:
    with pytest.raises(SystemExit):
        parse(["sessions", "revoke", *TLS, "--token", "abc"])


def test_cli_reads_the_token_from_a_file(tmp_path: Path) -> None:
    token, ref = new_session_token("u-1")
    (tmp_path / "t").write_text(token + "\n")
    args = parse(["sessions", "verify", *TLS, "--token-file", str(tmp_path / "t"), "--code", "1"])
    request = pb.VerifyMfaRequest(code=args.code)
    _set_target(request, args)
    assert ref_from_target(request) == ref


def test_cli_session_id_needs_the_user() -> None:
    args = parse(["sessions", "revoke", *TLS, "--session-id", "a" * 64])
    with pytest.raises(ConfigError, match="--session-id needs --user"):
        _set_target(pb.RevokeSessionRequest(), args)
    args = parse(["sessions", "revoke", *TLS, "--session-id", "a" * 64, "--user", "u"])
    request = pb.RevokeSessionRequest()
    _set_target(request, args)
    assert ref_from_target(request).tag == user_tag("u")


def test_a_token_passed_as_the_file_name_is_not_echoed() -> None:
    token, _ = new_session_token("u-1")
    args = parse(["sessions", "revoke", *TLS, "--token-file", token])
    with pytest.raises(ConfigError) as error:
        _set_target(pb.RevokeSessionRequest(), args)
    assert token not in str(error.value)

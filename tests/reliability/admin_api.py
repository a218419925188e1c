"""A small synchronous client of one replica's admin API (admitd.v1 Sessions, mTLS), for
the replica fault: sessions made, revoked and second factors checked through a replica."""

from __future__ import annotations

import time

import grpc
import pyotp

from admitd._proto import sessions_pb2 as pb
from admitd._proto import sessions_pb2_grpc
from admitd.pki import issue_leaf
from tests.pki_fixtures import PkiSet
from tests.reliability.stack import ADMIN

__all__ = ["AdminClient", "wrong_code"]

_TIMEOUT = 10.0


class AdminClient:
    def __init__(self, pki: PkiSet, port: int) -> None:
        caller = issue_leaf(pki.client_ca, "rel-ops", uris=(ADMIN,))
        credentials = grpc.ssl_channel_credentials(
            (pki.directory / "root.pem").read_bytes(),
            caller.key_pem,
            caller.cert_pem + pki.client_ca.cert_pem,
        )
        self._channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
        self._stub = sessions_pb2_grpc.SessionsStub(self._channel)

    def enrol_totp(self, user: str, organisation: str) -> pyotp.TOTP:
        begun = self._stub.BeginTotpEnrolment(
            pb.BeginTotpEnrolmentRequest(user_id=user, organisation=organisation),
            timeout=_TIMEOUT,
        )
        totp = pyotp.TOTP(pyotp.parse_uri(begun.provisioning_uri).secret)
        confirm = pb.ConfirmTotpEnrolmentRequest(
            user_id=user, organisation=organisation, code=totp.at(time.time() - 30)
        )
        result = self._stub.ConfirmTotpEnrolment(confirm, timeout=_TIMEOUT).result
        assert result == pb.MFA_RESULT_OK, result
        return totp

    def create_session(self, user: str, organisation: str, device_id: str) -> str:
        request = pb.CreateSessionRequest(
            user_id=user,
            organisation=organisation,
            roles=["viewer"],
            device_id=device_id,
            user_agent="rel/1",
        )
        return str(self._stub.CreateSession(request, timeout=_TIMEOUT).session_token)

    def revoke(self, token: str) -> bool:
        request = pb.RevokeSessionRequest(session_token=token)
        return bool(self._stub.RevokeSession(request, timeout=_TIMEOUT).revoked)

    def verify(self, token: str, code: str) -> str:
        """The MfaResult's name, e.g. MFA_RESULT_LOCKED_OUT."""
        request = pb.VerifyMfaRequest(session_token=token, code=code)
        result = self._stub.VerifyMfa(request, timeout=_TIMEOUT).result
        return str(pb.MfaResult.Name(result))

    def close(self) -> None:
        self._channel.close()


def wrong_code(totp: pyotp.TOTP) -> str:
    """A six-digit code no step within a minute either side would accept."""
    now = time.time()
    near = {totp.at(now + step) for step in range(-90, 91, 30)}
    return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in near)

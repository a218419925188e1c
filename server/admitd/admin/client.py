"""A blocking mTLS client of `admitd.v1.Sessions`, for `admitd sessions` and scripts."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from admitd._proto import sessions_pb2_grpc
from admitd.admin.errors import AdminCallFailed
from admitd.errors import ConfigError

__all__ = ["AdminClient", "ClientTls"]

Response = TypeVar("Response")
_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ClientTls:
    cert: Path  # PEM client certificate (chain allowed)
    key: Path
    ca: Path  # PEM CA certificate(s) that issued admitd's server certificate
    server_name: str | None = None  # when the address is not a name in the server cert


class AdminClient:
    def __init__(self, address: str, tls: ClientTls, *, timeout: float = _TIMEOUT) -> None:
        try:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=tls.ca.read_bytes(),
                private_key=tls.key.read_bytes(),
                certificate_chain=tls.cert.read_bytes(),
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot read a TLS file: {exc}", fix="check --cert/--key/--ca"
            ) from None
        options = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
        self._channel = grpc.secure_channel(address, credentials, options=options)
        self._address = address
        self._timeout = timeout
        self.stub: Any = sessions_pb2_grpc.SessionsStub(self._channel)  # type: ignore[no-untyped-call]

    def call(self, rpc: Callable[..., Response], request: object) -> Response:
        """Call `rpc` (a stub method); every gRPC failure becomes AdminCallFailed."""
        try:
            return rpc(request, timeout=self._timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            name = code.name if code is not None else "UNKNOWN"
            raise AdminCallFailed(f"{self._address}: {name}: {exc.details()}") from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def mtls_client_options() -> argparse.ArgumentParser:
    """Options every admin-API command shares: where admitd is, and the caller's mTLS identity."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default="127.0.0.1:9443", help="admin.listen of admitd")
    common.add_argument("--cert", type=Path, required=True, help="client certificate (PEM)")
    common.add_argument("--key", type=Path, required=True, help="client private key (PEM)")
    common.add_argument("--ca", type=Path, required=True, help="CA of admitd's server cert")
    common.add_argument("--server-name", default=None, help="expected name in the server cert")
    return common

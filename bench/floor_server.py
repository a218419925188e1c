"""The benchmark floor: a minimal grpc.aio ext_authz Check server that always allows.

It does no work per Check beyond what Python gRPC itself costs (deserialise the
CheckRequest, build a CheckResponse), so Envoy + this server is the best an
ext_authz server written in Python with grpc.aio can do on this machine.

    python bench/floor_server.py --port 9001
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import status_pb2

__all__ = ["AlwaysAllow", "serve"]

_OK = external_auth_pb2.CheckResponse(
    status=status_pb2.Status(code=0),
    ok_response=external_auth_pb2.OkHttpResponse(),
)


class AlwaysAllow(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    async def Check(  # noqa: N802 (gRPC method name)
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        return _OK


async def serve(host: str, port: int) -> None:
    server = grpc.aio.server()
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(AlwaysAllow(), server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description="always-allow ext_authz Check server (floor)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()

"""The `admitd` command: one sub-command per job, each defined by its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from admitd import __version__
from admitd.errors import AdmitdError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="admitd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"admitd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _command_registrars():
        register(commands)
    return parser


def _command_registrars() -> list[Callable[[Commands], None]]:
    # Imported lazily so `admitd --help` stays fast and one broken optional
    # dependency (e.g. PKCS#11) does not take the whole command down.
    from admitd.commands import registrars

    return registrars()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except AdmitdError as exc:
        print(f"admitd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not _is_redis_error(exc):
            raise
        # The offline tools talk to Redis with redis-py's sync client: its errors get the
        # same one-line answer (never the URL, which may hold a password).
        print(f"admitd: error: Redis did not answer ({type(exc).__name__})", file=sys.stderr)
        return 2


def _is_redis_error(exc: Exception) -> bool:
    from redis.exceptions import RedisClusterException, RedisError

    return isinstance(exc, RedisError | RedisClusterException)

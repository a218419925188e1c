"""`admitd audit verify` and `admitd audit export`."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from admitd.audit.chain import ChainHead
from admitd.audit.config import (
    SECTION_KEYS,
    AuditConfig,
    audit_config_from_fields,
    public_key_from_file,
)
from admitd.audit.export import export_stream
from admitd.audit.sealed import entry_opener
from admitd.audit.sources import (
    CheckpointSet,
    checkpoints_from_file,
    checkpoints_from_stream,
    records_from_file,
    records_from_stream,
)
from admitd.audit.verify import Opener, Report, verify_chain
from admitd.cli_setup import config_and_redis_options, config_file, required_redis_url
from admitd.envelope import Sealer
from admitd.errors import ConfigError
from admitd.kms.config import kms_from_config
from admitd.sessions.redis_sync import sync_client_from_url

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify` and `audit export` to the `admitd` parser."""
    common = config_and_redis_options(
        config_help="admitd YAML config: redis_url, kms: and audit: (default: $ADMITD_CONFIG)",
        redis_help="Redis holding the audit stream (overrides redis_url)",
    )
    audit = commands.add_parser(
        "audit", help="verify and export the audit log", description=__doc__
    )
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = sub.add_parser(
        "verify", parents=[common], help="recompute every hash; exit 1 on the first broken link"
    )
    verify.add_argument("--public-key", type=Path, help="Ed25519 PEM that signs checkpoints")
    verify.add_argument(
        "--from", dest="start", help="first stream ID (a range trusts its first link)"
    )
    verify.add_argument("--to", dest="end", help="last stream ID (no tail check)")
    verify.add_argument("--file", type=Path, help="verify an export (JSON lines) instead of Redis")
    verify.set_defaults(handler=_verify)
    export = sub.add_parser("export", parents=[common], help="decrypted entries for a SIEM")
    export.add_argument("--since", required=True, help="ISO 8601 time, e.g. 2025-01-31T00:00:00Z")
    export.add_argument("--format", choices=["jsonl"], default="jsonl")
    export.add_argument("--out", type=Path, required=True, help="file to write (mode 0600)")
    export.set_defaults(handler=_export)


@dataclass(frozen=True, slots=True)
class _Setup:
    audit: AuditConfig
    redis_url: str | None
    sealer: Sealer | None


def _setup(args: argparse.Namespace) -> _Setup:
    if args.config is None:
        return _Setup(AuditConfig(), args.redis_url, None)
    file = config_file(args.config)
    audit = audit_config_from_fields(file.section("audit", SECTION_KEYS))
    sealer = Sealer(kms_from_config(file.kms())) if file.has("kms") else None
    return _Setup(audit, args.redis_url or file.redis_url(), sealer)


def _opener(sealer: Sealer | None) -> AbstractContextManager[Opener | None]:
    # Verify and export walk the stream synchronously; entries open on the opener's loop.
    return entry_opener(sealer) if sealer is not None else nullcontext()


def _client(setup: _Setup) -> redis.Redis:
    url = required_redis_url(setup.redis_url, "pass --redis-url, set redis_url, or --file")
    return sync_client_from_url(url, decode_responses=True)


def _public_key(args: argparse.Namespace, setup: _Setup) -> Ed25519PublicKey | None:
    path = args.public_key or setup.audit.public_key_file
    return public_key_from_file(Path(path)) if path else None


def _verify(args: argparse.Namespace) -> int:
    setup = _setup(args)
    public_key = _public_key(args, setup)
    if args.file is not None:
        checkpoints = checkpoints_from_file(args.file, public_key)
        records = records_from_file(args.file)
        start, tail = None, True
    else:
        client = _client(setup)
        checkpoints = checkpoints_from_stream(client, setup.audit.checkpoint_key, public_key)
        records = records_from_stream(
            client, setup.audit.stream_key, start=args.start or "-", end=args.end or "+"
        )
        start = None if args.start else ChainHead.genesis()
        tail = args.end is None
    sealer = None if args.file is not None else setup.sealer
    if checkpoints.problem is not None:
        print(f"FAILED: {checkpoints.problem}", file=sys.stderr)
        return 1
    with _opener(sealer) as opener:
        report = verify_chain(
            records, opener=opener, checkpoints=checkpoints.by_seq, start=start, check_tail=tail
        )
    return _print_report(report, checkpoints, args.file is not None)


def _print_report(report: Report, checkpoints: CheckpointSet, from_file: bool) -> int:
    if checkpoints.public_key is None:
        print("note: no public key given: checkpoints not checked (a deleted tail goes unseen)")
    if not report.content_checked and not from_file:
        print("note: no kms: section: digests not recomputed from the plaintext (links only)")
    rate = report.entries / report.seconds if report.seconds > 0 else 0.0
    summary = f"{report.entries} entries in {report.seconds:.2f} s ({rate:,.0f} entries/s)"
    if report.problem is not None:
        print(f"FAILED after {summary}: {report.problem}", file=sys.stderr)
        return 1
    head = f"head seq {report.head.seq} {report.head.hash.hex()}" if report.head else "empty log"
    audited = (
        f"standing for {report.decisions} audited decisions and events; "
        if report.decisions is not None
        else ""
    )
    print(f"ok: {summary}; {audited}{len(checkpoints.by_seq)} checkpoints matched; {head}")
    return 0


def _export(args: argparse.Namespace) -> int:
    setup = _setup(args)
    if setup.sealer is None:
        raise ConfigError("export needs the kms: section to decrypt", fix="pass --config")
    try:
        since = datetime.fromisoformat(args.since)
    except ValueError:
        raise ConfigError(
            f"--since {args.since!r} is not ISO 8601", fix="e.g. 2025-01-31T00:00:00Z"
        ) from None
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out, entry_opener(setup.sealer) as opener:
        report = export_stream(
            _client(setup),
            setup.audit.stream_key,
            opener,
            out,
            since_ms=int(since.timestamp() * 1000),
        )
    print(
        f"exported {report.entries} entries (standing for {report.decisions} audited decisions"
        f" and events) and {report.checkpoints} checkpoints to {args.out}"
    )
    if report.undecryptable:
        print(
            f"FAILED: {report.undecryptable} entries could not be decrypted"
            " (written sealed, with the reason)",
            file=sys.stderr,
        )
        return 1
    return 0

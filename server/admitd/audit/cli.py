"""`admitd audit verify` and `admitd audit export`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
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
from admitd.audit.sealed import open_entry
from admitd.audit.sources import (
    CheckpointSet,
    checkpoints_from_file,
    checkpoints_from_stream,
    records_from_file,
    records_from_stream,
)
from admitd.audit.verify import Opener, Report, verify_chain
from admitd.envelope import Sealer
from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.kms.config import kms_config_from_mapping, kms_from_config
from admitd.yamlsource import load_yaml

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify` and `audit export` to the `admitd` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("ADMITD_CONFIG"),
        help="admitd YAML config: redis_url, kms: and audit: (default: $ADMITD_CONFIG)",
    )
    common.add_argument(
        "--redis-url",
        default=os.environ.get("ADMITD_REDIS_URL"),
        help="Redis holding the audit stream (overrides redis_url)",
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
    opener: Opener | None


def _setup(args: argparse.Namespace) -> _Setup:
    if args.config is None:
        return _Setup(AuditConfig(), args.redis_url, None)
    doc = load_yaml(Path(args.config))
    data = doc.data if isinstance(doc.data, Mapping) else {}
    audit = audit_config_from_fields(Fields(doc, ("audit",), data.get("audit"), SECTION_KEYS))
    opener: Opener | None = None
    if isinstance(data.get("kms"), Mapping):
        kms_cfg = kms_config_from_mapping(
            data["kms"], file=doc.file, dev_mode=bool(data.get("dev_mode"))
        )
        sealer = Sealer(kms_from_config(kms_cfg))
        opener = lambda envelope: open_entry(sealer, envelope)  # noqa: E731
    url = args.redis_url or data.get("redis_url")
    return _Setup(audit, str(url) if url else None, opener)


def _client(setup: _Setup) -> redis.Redis:
    if not setup.redis_url:
        raise ConfigError("no Redis given", fix="pass --redis-url, set redis_url, or --file")
    return redis.Redis.from_url(setup.redis_url, decode_responses=True, socket_timeout=10)


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
    opener = None if args.file is not None else setup.opener
    if checkpoints.problem is not None:
        print(f"FAILED: {checkpoints.problem}", file=sys.stderr)
        return 1
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
    print(f"ok: {summary}; {len(checkpoints.by_seq)} checkpoints matched; {head}")
    return 0


def _export(args: argparse.Namespace) -> int:
    setup = _setup(args)
    if setup.opener is None:
        raise ConfigError("export needs the kms: section to decrypt", fix="pass --config")
    try:
        since = datetime.fromisoformat(args.since)
    except ValueError:
        raise ConfigError(
            f"--since {args.since!r} is not ISO 8601", fix="e.g. 2025-01-31T00:00:00Z"
        ) from None
    since = since if since.tzinfo else since.replace(tzinfo=UTC)
    descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        report = export_stream(
            _client(setup),
            setup.audit.stream_key,
            setup.opener,
            out,
            since_ms=int(since.timestamp() * 1000),
        )
    print(f"exported {report.entries} entries and {report.checkpoints} checkpoints to {args.out}")
    if report.undecryptable:
        print(
            f"FAILED: {report.undecryptable} entries could not be decrypted"
            " (written sealed, with the reason)",
            file=sys.stderr,
        )
        return 1
    return 0

"""`admitd keys`: init, list, rotate, reencrypt and retire master keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import redis

from admitd.audit.oneshot import RecordedEvents, chain_recorded_events
from admitd.cli_setup import (
    config_and_redis_options,
    config_file,
    required_config,
    required_redis_url,
)
from admitd.kms.config import KmsConfig, Provider, kms_from_config
from admitd.kms.progress import ProgressBar
from admitd.kms.rotation import reencrypt_alias, retire_version, rotate_alias

__all__ = ["register"]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keys` command and its sub-commands to the `admitd` parser."""
    common = config_and_redis_options(
        config_help="admitd YAML config; its `kms:` section is used (default: $ADMITD_CONFIG)",
        redis_help="Redis holding sealed records (default: $ADMITD_REDIS_URL)",
    )
    keys = commands.add_parser("keys", help="manage KMS master keys", description=__doc__)
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    init = sub.add_parser("init", parents=[common], help="create the keyring / first versions")
    init.set_defaults(handler=_init)
    listing = sub.add_parser("list", parents=[common], help="list aliases and key versions")
    listing.set_defaults(handler=_list)
    rotate = sub.add_parser("rotate", parents=[common], help="make a new active version")
    rotate.add_argument("--alias", required=True)
    rotate.set_defaults(handler=_rotate)
    reencrypt = sub.add_parser(
        "reencrypt", parents=[common], help="re-wrap records still under old versions"
    )
    reencrypt.add_argument("--alias", required=True)
    reencrypt.add_argument("--batch", type=int, default=500, help="SCAN COUNT per round trip")
    reencrypt.add_argument("--restart", action="store_true", help="ignore a saved position")
    reencrypt.set_defaults(handler=_reencrypt)
    retire = sub.add_parser("retire", parents=[common], help="destroy an unused old version")
    retire.add_argument("--alias", required=True)
    retire.add_argument("--version", type=int, required=True)
    retire.set_defaults(handler=_retire)


def _config(args: argparse.Namespace) -> KmsConfig:
    # Audit events are log lines: make sure they go somewhere even when the
    # main CLI has not configured logging (a no-op when it has).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return config_file(required_config(args)).kms()


def _redis(args: argparse.Namespace) -> redis.Redis:
    url = required_redis_url(args.redis_url, "pass --redis-url or set ADMITD_REDIS_URL")
    return redis.Redis.from_url(url)


def _init(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if cfg.provider is Provider.LOCAL:
        from admitd.kms.local import create_keyring_file

        assert cfg.keyring is not None  # guaranteed for the local provider
        added = create_keyring_file(cfg.keyring, cfg.aliases)
    else:
        kms = kms_from_config(cfg, require_aliases=False)
        added = tuple(a for a in cfg.aliases if a not in kms.aliases())
        for alias in added:
            kms.create_alias(alias)
    audit = RecordedEvents()
    for alias in added:
        audit.record("kms.alias.created", {"alias": alias, "version": "1"})
    chain_recorded_events(Path(args.config) if args.config else None, audit)
    print(f"created {len(added)} alias(es): {', '.join(added) or 'none needed'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    kms = kms_from_config(_config(args))
    for alias in kms.aliases():
        for v in kms.versions(alias):
            print(f"{alias}\tv{v.version}\t{v.state.value}\t{v.created or '-'}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    kms, audit = kms_from_config(_config(args)), RecordedEvents()
    created = rotate_alias(kms, args.alias, audit)
    chain_recorded_events(Path(args.config) if args.config else None, audit)
    print(f"{args.alias}: v{created.version} is now active; run `admitd keys reencrypt`")
    return 0


def _reencrypt(args: argparse.Namespace) -> int:
    cfg = _config(args)
    kms, client = kms_from_config(cfg), _redis(args)
    bar, audit = ProgressBar(int(client.dbsize())), RecordedEvents()
    # The command's own event loop: re-encryption awaits the KMS port like a seal does.
    report = asyncio.run(
        reencrypt_alias(
            kms,
            client,
            args.alias,
            audit,
            patterns=cfg.record_patterns,
            batch=args.batch,
            restart=args.restart,
            progress=bar,
        )
    )
    bar.finish(report)
    chain_recorded_events(Path(args.config) if args.config else None, audit)
    print(
        f"{args.alias}: {report.rewrapped} re-wrapped, {report.current} already current,"
        f" {report.failed} failed, {report.malformed} malformed, {report.conflicts} conflicts"
    )
    return 0 if report.complete else 1


def _retire(args: argparse.Namespace) -> int:
    cfg = _config(args)
    kms, client = kms_from_config(cfg), _redis(args)
    audit = RecordedEvents()
    retire_version(kms, client, args.alias, args.version, audit, patterns=cfg.record_patterns)
    chain_recorded_events(Path(args.config) if args.config else None, audit)
    print(f"{args.alias}: v{args.version} retired; its key material is destroyed")
    return 0

"""`admitd keys`: master keys, with dual approval on a running deployment.

On a running deployment every key operation is a change request over the admin API
(`request`, then a different custodian's `approve`; `changes`, `list-remote`).
`rotate`, `reencrypt` and `retire` work on the keyring and Redis directly, for a
stopped deployment only: they refuse to run without --offline, and every event they
record says mode=offline, who ran them and where; so does `provider-accept`, which
records the config's `kms:` provider as the approved one. `init` and `list` read or create
the keyring as before. No sub-command prints key material.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import redis

from admitd.audit.oneshot import RecordedEvents, chain_recorded_events
from admitd.cli_setup import (
    config_and_redis_options,
    config_file,
    required_config,
    required_redis_url,
)
from admitd.errors import AdmitdError, StoreUnavailable
from admitd.kms.config import KmsConfig, Provider, kms_from_config
from admitd.kms.progress import ProgressBar
from admitd.kms.rotation import reencrypt_alias, retire_version, rotate_alias
from admitd.sessions.redis_sync import sync_client_from_url

__all__ = ["OfflineEvents", "OfflineNotConfirmed", "register"]


class OfflineNotConfirmed(AdmitdError):
    """An offline key command ran without --offline."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `keys` command and its sub-commands to the `admitd` parser."""
    common = config_and_redis_options(
        config_help="admitd YAML config; its `kms:` section is used (default: $ADMITD_CONFIG)",
        redis_help="Redis holding sealed records (default: $ADMITD_REDIS_URL)",
    )
    keys = commands.add_parser("keys", help="manage KMS master keys", description=__doc__)
    keys.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUBCOMMAND")
    # Imported here: the admin-API client is the custody package's, not the KMS's.
    from admitd.custody.cli import register_remote

    register_remote(sub)
    init = sub.add_parser("init", parents=[common], help="create the keyring / first versions")
    init.set_defaults(handler=_init)
    listing = sub.add_parser("list", parents=[common], help="list aliases and key versions")
    listing.set_defaults(handler=_list)
    offline = argparse.ArgumentParser(add_help=False)
    offline.add_argument(
        "--offline",
        action="store_true",
        help="required: the deployment is stopped, change the keys directly (audited)",
    )
    rotate = sub.add_parser(
        "rotate", parents=[common, offline], help="offline: make a new active version"
    )
    rotate.add_argument("--alias", required=True)
    rotate.set_defaults(handler=_offline(_rotate))
    reencrypt = sub.add_parser(
        "reencrypt", parents=[common, offline], help="offline: re-wrap records under old versions"
    )
    reencrypt.add_argument("--alias", required=True)
    reencrypt.add_argument("--batch", type=int, default=500, help="SCAN COUNT per round trip")
    reencrypt.add_argument("--restart", action="store_true", help="ignore a saved position")
    reencrypt.set_defaults(handler=_offline(_reencrypt))
    retire = sub.add_parser(
        "retire", parents=[common, offline], help="offline: destroy an unused old version"
    )
    retire.add_argument("--alias", required=True)
    retire.add_argument("--version", type=int, required=True)
    retire.set_defaults(handler=_offline(_retire))
    accept = sub.add_parser(
        "provider-accept",
        parents=[common, offline],
        help="offline: record the config's kms: provider as the approved one (key custody)",
    )
    accept.set_defaults(handler=_offline(_provider_accept))


class OfflineEvents(RecordedEvents):
    """Every event of an offline command says so, and who ran it where."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self._extra = {
            "mode": "offline",
            "operator": _operator(),
            "host": socket.gethostname(),
            "command": f"keys {command}",
        }

    def record(self, event_type: str, fields: dict[str, str]) -> None:
        super().record(event_type, {**fields, **self._extra})


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


Handler = Callable[[argparse.Namespace, OfflineEvents], int]


def _offline(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Refuse without --offline, pointing at the dual-approval flow; audit the run."""

    def run(args: argparse.Namespace) -> int:
        command = args.keys_command
        target = {"alias": args.alias} if hasattr(args, "alias") else {}
        if not args.offline and command == "provider-accept":
            raise OfflineNotConfirmed(
                "`admitd keys provider-accept` records the config's KMS provider as approved"
                " without dual control. On a running deployment, request the change:"
                " `admitd keys request provider --config NEW.yaml --reason ..."
                " --session-token-file ...` (with --cert/--key/--ca), then a different"
                " custodian runs `admitd keys approve <change-id>`. For a stopped deployment,"
                " pass --offline (it is audited)."
            )
        if not args.offline:
            version = f" --version {args.version}" if command == "retire" else ""
            raise OfflineNotConfirmed(
                f"`admitd keys {command}` changes keys directly. On a running deployment,"
                f" request the change: `admitd keys request {command} --alias {args.alias}"
                f"{version} --reason ... --session-token-file ...` (with --cert/--key/--ca),"
                " then a different custodian runs `admitd keys approve <change-id>`."
                " For a stopped deployment, pass --offline (it is audited)."
            )
        audit = OfflineEvents(command)
        audit.record("kms.offline.started", target)
        try:
            return handler(args, audit)
        except AdmitdError as exc:
            audit.record("kms.offline.failed", {**target, "error": str(exc)[:500]})
            raise
        finally:
            chain_recorded_events(Path(args.config) if args.config else None, audit)

    return run


def _config(args: argparse.Namespace) -> KmsConfig:
    # Audit events are log lines: make sure they go somewhere even when the
    # main CLI has not configured logging (a no-op when it has).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return config_file(required_config(args)).kms()


def _redis(args: argparse.Namespace) -> redis.Redis:
    url = required_redis_url(args.redis_url, "pass --redis-url or set ADMITD_REDIS_URL")
    return sync_client_from_url(url)


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


def _rotate(args: argparse.Namespace, audit: OfflineEvents) -> int:
    kms = kms_from_config(_config(args))
    created = rotate_alias(kms, args.alias, audit)
    print(f"{args.alias}: v{created.version} is now active; run `admitd keys reencrypt --offline`")
    return 0


def _reencrypt(args: argparse.Namespace, audit: OfflineEvents) -> int:
    cfg = _config(args)
    kms, client = kms_from_config(cfg), _redis(args)
    bar = ProgressBar(int(client.dbsize()))
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
    print(
        f"{args.alias}: {report.rewrapped} re-wrapped, {report.current} already current,"
        f" {report.failed} failed, {report.malformed} malformed, {report.conflicts} conflicts"
    )
    return 0 if report.complete else 1


def _retire(args: argparse.Namespace, audit: OfflineEvents) -> int:
    cfg = _config(args)
    kms, client = kms_from_config(cfg), _redis(args)
    retire_version(kms, client, args.alias, args.version, audit, patterns=cfg.record_patterns)
    print(f"{args.alias}: v{args.version} retired; its key material is destroyed")
    return 0


def _provider_accept(args: argparse.Namespace, audit: OfflineEvents) -> int:
    """Record the config's kms: provider as the approved one (key custody, stopped
    deployment): the next `admitd serve` with this kms: starts, any other is refused."""
    # Imported here: the fingerprint is the custody package's.
    from admitd.custody.provider import PROVIDER_KEY, provider_record, settings_from_config

    path = required_config(args)
    settings = settings_from_config(_config(args))
    url = args.redis_url or config_file(path).redis_url()
    client = sync_client_from_url(
        required_redis_url(url, "pass --redis-url, set ADMITD_REDIS_URL or redis_url")
    )
    try:
        previous = client.hget(PROVIDER_KEY, "fingerprint")
        client.hset(PROVIDER_KEY, mapping=provider_record(settings, "offline"))  # type: ignore[arg-type]
    except redis.RedisError as exc:
        raise StoreUnavailable(
            f"cannot record the provider in Redis ({type(exc).__name__})"
        ) from None
    finally:
        client.close()
    old = previous.decode() if isinstance(previous, bytes) else str(previous or "")
    audit.record(
        "kms.provider.recorded",
        {
            "fingerprint": settings.fingerprint,
            "summary": settings.summary,
            "previous_fingerprint": old,
            "how": "offline",
        },
    )
    print(f"kms provider recorded as approved: {settings.summary}")
    print(f"fingerprint {settings.fingerprint} (was {old or 'none'})")
    return 0

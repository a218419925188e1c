"""What the `admitd` sub-commands share: `--config`, `--redis-url`, the config file's sections."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from admitd.errors import ConfigError
from admitd.fields import Fields
from admitd.kms.config import SECTION_KEYS as KMS_KEYS
from admitd.kms.config import KmsConfig, kms_config_from_fields
from admitd.yamlsource import load_yaml

__all__ = [
    "ConfigFile",
    "add_config_option",
    "add_redis_option",
    "config_and_redis_options",
    "config_file",
    "required_config",
    "required_redis_url",
]


def add_config_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--config FILE`, by default $ADMITD_CONFIG; `args.config` is None when neither is set."""
    parser.add_argument(
        "--config", type=_path_or_none, default=os.environ.get("ADMITD_CONFIG"), help=help_text
    )


def add_redis_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--redis-url URL`, by default $ADMITD_REDIS_URL."""
    parser.add_argument("--redis-url", default=os.environ.get("ADMITD_REDIS_URL"), help=help_text)


def config_and_redis_options(*, config_help: str, redis_help: str) -> argparse.ArgumentParser:
    """A parent parser for sub-commands that read the config file and talk to Redis."""
    common = argparse.ArgumentParser(add_help=False)
    add_config_option(common, config_help)
    add_redis_option(common, redis_help)
    return common


def required_config(
    args: argparse.Namespace, fix: str = "pass --config or set ADMITD_CONFIG"
) -> Path:
    config: Path | None = args.config
    if config is None:
        raise ConfigError("no configuration file given", fix=fix)
    return config


def required_redis_url(url: str | None, fix: str) -> str:
    if not url:
        raise ConfigError("no Redis given", fix=fix)
    return url


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The top level of an admitd config file, for a command that needs a few sections.

    The server validates the whole file (`admitd.config`); a command reads only its
    sections, so `admitd keys init` works before the TLS files exist.
    """

    top: Fields

    def has(self, key: str) -> bool:
        return self.top.has(key)

    def section(self, key: str, allowed: set[str]) -> Fields:
        return self.top.sub(key, allowed)

    def redis_url(self) -> str | None:
        """The file's `redis_url`, if any (a command's `--redis-url` comes first)."""
        url = self.top.raw.get("redis_url")
        return str(url) if url else None

    def kms(self) -> KmsConfig:
        """The `kms:` section; without one, development builds fall back to `dev`."""
        dev_mode = self.top.flag("dev_mode", False)
        return kms_config_from_fields(self.top.sub("kms", KMS_KEYS), dev_mode=dev_mode)


def config_file(path: Path) -> ConfigFile:
    """Read `path` (YAML under admitd's rules); ConfigError if it is not a mapping."""
    doc = load_yaml(path)
    # Any top-level key is accepted here: unknown ones are the server's to refuse.
    present = set(doc.data) if isinstance(doc.data, dict) else set()
    return ConfigFile(Fields(doc, (), doc.data, present))


def _path_or_none(text: str) -> Path | None:
    return Path(text) if text else None

"""`event_loop`: uvloop when installed (auto), or what the config names; asyncio on request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvloop
import yaml

from admitd.config import load_config
from admitd.errors import ConfigError
from admitd.server import loop_factory


def config_with(tmp_path: Path, **settings: object):  # type: ignore[no-untyped-def]
    (tmp_path / "p.yaml").write_text("routes: []\n")
    doc = {"policies": "p.yaml", "tls": {"trust_bundle": "ca.pem"}, **settings}
    (tmp_path / "admitd.yaml").write_text(yaml.safe_dump(doc))
    return load_config(tmp_path / "admitd.yaml", environ={})


def test_auto_and_uvloop_run_on_uvloop_asyncio_on_asyncio() -> None:
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None  # asyncio.Runner's own default loop
    with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)


def test_auto_falls_back_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now fails
    assert loop_factory("auto") is None


def test_the_config_names_the_loop(tmp_path: Path) -> None:
    assert config_with(tmp_path).event_loop == "auto"
    assert config_with(tmp_path, event_loop="asyncio").event_loop == "asyncio"
    with pytest.raises(ConfigError, match=r"event_loop: unexpected value 'trio'"):
        config_with(tmp_path, event_loop="trio")


def test_uvloop_requested_but_missing_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"uvloop is not installed.*admitd\[uvloop\]"):
        config_with(tmp_path, event_loop="uvloop")

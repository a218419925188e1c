"""Policies hot-reload from a ConfigMap volume: the kubelet's atomic update, mimicked.

The kubelet writes a ConfigMap into `..<timestamp>/`, points `..data` at it, and each key
is a symlink `name -> ..data/name`; an update writes a new timestamped directory, swaps
`..data` with one rename, and removes the old directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from admitd.core.route import PolicySet
from admitd.policy.watch import PolicyWatcher
from tests.deploy.render import REPO

_POLICY = (REPO / "deploy" / "k8s" / "base" / "policies" / "routes.yaml").read_text()
_EXTRA_ROUTE = """
  - name: added-by-configmap-update
    match:
      path_exact: /added
    public: true
"""


def _write_version(volume: Path, stamp: str, files: dict[str, str]) -> None:
    directory = volume / f"..{stamp}"
    directory.mkdir()
    for name, body in files.items():
        (directory / name).write_text(body)
    (volume / "..data_tmp").symlink_to(directory.name)
    os.rename(volume / "..data_tmp", volume / "..data")  # the atomic swap
    for name in files:
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")


def _kubelet_update(volume: Path, stamp: str, files: dict[str, str]) -> None:
    old = os.readlink(volume / "..data")
    _write_version(volume, stamp, files)
    for stale in (volume / old).iterdir():
        stale.unlink()
    (volume / old).rmdir()


@pytest.mark.parametrize("watch", ["directory", "file"])
async def test_policy_watcher_applies_a_configmap_update(tmp_path: Path, watch: str) -> None:
    volume = tmp_path / "policies"
    volume.mkdir()
    _write_version(volume, "2025_01_01_00_00_00.000000001", {"routes.yaml": _POLICY})
    watcher = PolicyWatcher(volume if watch == "directory" else volume / "routes.yaml")
    applied: list[PolicySet] = []

    assert await watcher.poll(applied.append) is None  # nothing changed yet
    _kubelet_update(
        volume, "2025_01_01_00_01_00.000000002", {"routes.yaml": _POLICY + _EXTRA_ROUTE}
    )

    assert await watcher.poll(applied.append) is True
    assert [r.name for r in applied[0].routes][-1] == "added-by-configmap-update"
    assert await watcher.poll(applied.append) is None  # the swap is seen once

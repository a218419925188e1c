"""`pip install` is quiet about the package's own metadata: building it with the installed
setuptools gives no deprecation warning, and the licence is an SPDX expression (PEP 639)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_METADATA = """
import tempfile, warnings
warnings.simplefilter("error")  # any warning (SetuptoolsDeprecationWarning included) fails
from setuptools import build_meta
out = tempfile.mkdtemp()
name = build_meta.prepare_metadata_for_build_wheel(out)
print(open(f"{out}/{name}/METADATA").read())
"""


def test_metadata_builds_without_warnings_and_names_the_spdx_licence(tmp_path: Path) -> None:
    # A copy: building writes *.egg-info beside pyproject.toml, and others share the tree.
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copy(REPO / "README.md", tmp_path)
    (tmp_path / "server" / "admitd").mkdir(parents=True)
    (tmp_path / "server" / "admitd" / "__init__.py").touch()
    done = subprocess.run(
        [sys.executable, "-c", BUILD_METADATA],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Deprecat" not in done.stdout + done.stderr
    assert "License-Expression: Apache-2.0" in done.stdout.splitlines()


def test_the_build_requirement_supports_licence_expressions() -> None:
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]
    assert "setuptools>=77" in build["requires"]  # 77.0: `project.license` as a string

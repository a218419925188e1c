"""Command lines admitd prints for a person to paste: they run as printed, from where it ran.

`admitd` is often not on PATH (it lives in the virtualenv's `bin/`), so a printed command
names the `admitd` script beside the running interpreter, or `python -m admitd` with that
interpreter when there is no script (a source checkout run with `python -m`).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CODE", "admitd_program", "shell_line", "shown_path"]

CODE = "CODE"  # in a printed line: where the authenticator app's code goes


def admitd_program() -> list[str]:
    """The argv prefix that runs this same admitd again."""
    # abspath, not resolve(): a venv's `python` is a symlink to the system interpreter,
    # and following it would leave the venv (and lose admitd and its dependencies).
    python = Path(os.path.abspath(sys.executable))
    script = python.parent / "admitd"
    if script.exists():
        return [shown_path(script)]
    return [shown_path(python), "-m", "admitd"]


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it lies under it (as a person types
    it), else absolute; never a bare name, so a shell does not look it up on PATH."""
    absolute = Path(os.path.abspath(path))
    cwd = Path.cwd()
    if absolute.is_relative_to(cwd) and absolute != cwd:
        relative = str(absolute.relative_to(cwd))
        return relative if os.sep in relative else f".{os.sep}{relative}"
    return str(absolute)


def shell_line(argv: Sequence[str]) -> str:
    """One POSIX shell line (each word quoted when it needs to be)."""
    return shlex.join(argv)

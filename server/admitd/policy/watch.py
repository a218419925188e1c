"""Hot reload: notice changed policy files; the caller swaps in a new PolicySet only if it loads."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from admitd.errors import ConfigError
from admitd.policy.loader import load_policies
from admitd.policy.model import PolicySet

__all__ = ["PolicyWatcher"]

log = logging.getLogger(__name__)


class PolicyWatcher:
    """Polls the policy file or directory; a set of files that fails to load never
    replaces the running one (the error is logged with file, line and key)."""

    def __init__(self, path: Path) -> None:
        # Taken before the first load, so a change made while starting is not missed.
        self._path = path
        self._signature = self._current_signature()
        self.last_error = ""

    def poll(self, apply: Callable[[PolicySet], None], *, force: bool = False) -> bool | None:
        """True: a new policy was applied; False: the change failed to load; None: no change."""
        signature = self._current_signature()
        if signature == self._signature and not force:
            return None
        self._signature = signature
        try:
            policy = load_policies(self._path)
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("policy reload refused, keeping the running policy: %s", exc)
            return False
        self.last_error = ""
        apply(policy)
        log.info("policy reloaded: version %s, %d routes", policy.version, len(policy.routes))
        return True

    def _current_signature(self) -> tuple[tuple[str, int, int], ...]:
        paths = sorted(self._path.iterdir()) if self._path.is_dir() else [self._path]
        signature = []
        for path in paths:
            if path.suffix not in (".yaml", ".yml"):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            signature.append((path.name, st.st_mtime_ns, st.st_size))
        return tuple(signature)

"""Hot reload: notice changed policy files; the caller swaps in a new PolicySet only if it loads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from admitd.core.route import PolicySet
from admitd.errors import ConfigError
from admitd.policy.loader import load_policies

__all__ = ["RELOAD_TIME_LIMIT", "PolicyWatcher"]

log = logging.getLogger(__name__)

# Thousands of routes load in well under a second; a load that takes longer than
# this is refused, so a hostile or broken file cannot keep a new policy pending.
RELOAD_TIME_LIMIT = 10.0

Loader = Callable[[Path], PolicySet]


class PolicyWatcher:
    """Polls the policy file or directory; a set of files that fails to load never
    replaces the running one (the error is logged with file, line and key).

    The load runs in a worker thread, so Checks keep being answered meanwhile, and
    is refused past `time_limit`. A thread cannot be stopped, so one that overruns
    keeps running on its own (its late result is dropped) and no other load starts
    until it ends. Parsing is linear in the input since YAML aliases are refused.
    """

    def __init__(
        self, path: Path, *, load: Loader = load_policies, time_limit: float = RELOAD_TIME_LIMIT
    ) -> None:
        # Taken before the first load, so a change made while starting is not missed.
        self._path = path
        self._load = load
        self._time_limit = time_limit
        self._signature = self._current_signature()
        self._in_flight: asyncio.Future[PolicySet] | None = None
        self.last_error = ""

    async def poll(self, apply: Callable[[PolicySet], None], *, force: bool = False) -> bool | None:
        """True: a new policy was applied; False: the change was refused (it failed to
        load, or took too long); None: no change, or a load is still running."""
        if self._in_flight is not None and not self._in_flight.done():
            log.warning("policy reload skipped: the previous load is still running")
            return None
        signature = self._current_signature()
        if signature == self._signature and not force:
            return None
        self._signature = signature
        self._in_flight = _in_daemon_thread(self._load, self._path)
        try:
            policy = await asyncio.wait_for(asyncio.shield(self._in_flight), self._time_limit)
        except ConfigError as exc:
            return self._refuse(str(exc))
        except TimeoutError:
            return self._refuse(f"loading {self._path} took longer than {self._time_limit:g} s")
        except Exception as exc:  # a loader bug (or RecursionError) must not stop reloading
            log.exception("policy load failed unexpectedly")
            return self._refuse(f"{self._path}: {type(exc).__name__}: {exc}")
        self.last_error = ""
        apply(policy)
        log.info("policy reloaded: version %s, %d routes", policy.version, len(policy.routes))
        return True

    def _refuse(self, error: str) -> bool:
        self.last_error = error
        log.error("policy reload refused, keeping the running policy: %s", error)
        return False

    def _current_signature(self) -> tuple[tuple[str, int, int], ...]:
        try:
            paths = sorted(self._path.iterdir()) if self._path.is_dir() else [self._path]
        except OSError:  # the directory vanished: the load that follows reports it
            return ()
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


def _in_daemon_thread(load: Loader, path: Path) -> asyncio.Future[PolicySet]:
    """`load(path)` in a daemon thread (not an executor's: a load that never ends must
    not hold up the process's exit); its outcome settles the returned future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[PolicySet] = loop.create_future()
    # An overrun load's outcome is never awaited: read it, so asyncio does not warn.
    future.add_done_callback(lambda done: done.cancelled() or done.exception())

    def settle(policy: PolicySet | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        elif policy is not None:
            future.set_result(policy)

    def run() -> None:
        policy, error = None, None
        try:
            policy = load(path)
        except BaseException as exc:  # handed to the awaiting side, which decides
            error = exc
        with contextlib.suppress(RuntimeError):  # the event loop closed meanwhile
            loop.call_soon_threadsafe(settle, policy, error)

    threading.Thread(target=run, name="admitd-policy-load", daemon=True).start()
    return future

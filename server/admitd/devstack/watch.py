"""`admitd dev` watches its children: when one dies it says which, with its last log lines,
and the caller stops the rest and exits non-zero (a stack with a dead Envoy is no stack)."""

from __future__ import annotations

import signal
import sys
import time

from admitd.admin.printed_commands import shown_path
from admitd.devstack.processes import ProcessGroup

__all__ = ["EXIT_CHILD_DIED", "report_dead_child", "watch_children"]

EXIT_CHILD_DIED = 1
_POLL_SECONDS = 0.2
_TAIL_LINES = 20


def watch_children(group: ProcessGroup) -> int:
    """Block until a child exits (report it, EXIT_CHILD_DIED); Ctrl-C or SIGTERM: 0."""
    try:
        while (dead := group.first_exited()) is None:
            time.sleep(_POLL_SECONDS)
    except KeyboardInterrupt:
        print("\nstopping admitd, Envoy and the upstream ...", flush=True)
        return 0
    report_dead_child(group, *dead)
    return EXIT_CHILD_DIED


def report_dead_child(group: ProcessGroup, name: str, code: int) -> None:
    """On stderr: which child ended, how, and the end of its log."""
    tail = group.log_tail(name, _TAIL_LINES)
    print(
        f"admitd dev: {name} {_how_it_ended(code)}; stopping the others.\n"
        f"last lines of {shown_path(group.log_path(name))}:",
        *(f"  | {line}" for line in tail or ["(empty)"]),
        sep="\n",
        file=sys.stderr,
        flush=True,
    )


def _how_it_ended(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"

"""What a fault is and what its injector works with: the sizes, one run's state, the fault."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.reliability.load import LoadResult, Probe, ProbeMix
from tests.reliability.population import Credentials
from tests.reliability.stack import ReliabilityStack, StackSettings

__all__ = ["CI", "FULL", "Fault", "Injector", "Run", "Size", "note_spool_traffic"]


@dataclass(frozen=True, slots=True)
class Size:
    rate: float  # requests a second
    warm: float  # seconds of load before the fault
    hold: float  # seconds the fault lasts
    after: float  # seconds of load after the fault ends
    flood: float = 0.0  # extra denials a second while Redis is away (the spool fault)

    @property
    def seconds(self) -> float:
        return self.warm + self.hold + self.after


CI = Size(rate=100, warm=2, hold=3, after=8, flood=400)  # after: an admitd restart, busy host
FULL = Size(rate=300, warm=5, hold=30, after=15, flood=300)


@dataclass
class Run:
    """What an injector needs and leaves behind."""

    stack: ReliabilityStack
    mix: ProbeMix
    creds: Credentials
    size: Size
    sessions: list[Probe]
    fault_end: float = 0.0
    fault_wall: float = 0.0  # Unix seconds when the fault struck (where a test needs it)
    audit_since: float = 0.0  # Unix seconds; see figures.audit_count
    notes: list[str] = field(default_factory=list)
    load: LoadResult | None = None
    side_loads: list[LoadResult] = field(default_factory=list)  # a flood beside the load
    facts: dict[str, float] = field(default_factory=dict)  # what a fault's tests look at
    spool_at_crash: list[str] = field(default_factory=list)  # digests, the spool fault
    lockout: list[str] = field(default_factory=list)  # MFA results, the replica fault
    slow: tuple[float, float] = (0.0, 0.0)  # admitd slower than Envoy's timeout: from, to
    down: tuple[float, float] = (0.0, 0.0)  # admitd SIGKILLed: monotonic from, to
    terminated_at: float = 0.0  # admitd SIGTERM: when the signal went
    exited_at: float = 0.0
    exited_wall: float = 0.0  # the same, Unix seconds (decision log lines carry these)
    exit_code: int | None = None
    health: list[tuple[float, str]] = field(default_factory=list)
    stack_settings_grace: float = 10.0


Injector = Callable[[Run], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    title: str
    inject: Injector
    settings: StackSettings = field(default_factory=StackSettings)
    epilogue: Callable[[Run], None] | None = None  # run on the stack once figures are taken


def note_spool_traffic(run: Run, why: str = "") -> None:
    """How many audited decisions went through the spool (`facts` spooled and replayed,
    from admitd's admitd_audit_appends_total), and a note saying so."""
    appends = run.stack.audit_appends()
    run.facts["spooled"] = appends.get("spooled", 0.0)
    run.facts["replayed"] = appends.get("replayed", 0.0)
    run.notes.append(
        f"{run.facts['spooled']:.0f} audited decisions spooled{why},"
        f" {run.facts['replayed']:.0f} replayed"
    )

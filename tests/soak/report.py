"""A soak's figures as RELIABILITY.md's soak block (markdown) and as CSV (every sample)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from tests.soak.soak import SoakResult
from tests.soak.traffic import PATTERN

__all__ = ["BEGIN", "END", "markdown", "write_block", "write_csv"]

BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
_ROW_EVERY_S = 30.0


def write_csv(result: SoakResult, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["t_s", "requests", "rss_mib", "fds", "redis_connections", "threads", "tasks", "cpu_s"]
        )
        for s in result.samples:
            tasks = "" if s.tasks is None else s.tasks
            row = [f"{s.t:.1f}", s.requests, f"{s.rss_mib:.1f}", s.fds, s.redis_connections]
            writer.writerow([*row, s.threads, tasks, f"{s.cpu_s:.2f}"])


def markdown(result: SoakResult, command: str) -> str:
    return "\n".join(
        [
            BEGIN,
            _heading(result, command),
            "",
            _inputs(result),
            "",
            _over_time(result),
            "",
            f"**Verdict**: {result.verdict.summary()}",
            "",
            _outcomes(result),
            "",
            _audit(result),
            END,
        ]
    )


def write_block(out: Path, block: str) -> None:
    """Replace the soak block in `out` (appended when there is none)."""
    text = out.read_text() if out.exists() else "# Reliability\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if pattern.search(text):
        out.write_text(pattern.sub(lambda _: block, text))
    else:
        out.write_text(text.rstrip("\n") + "\n\n" + block + "\n")


def _heading(r: SoakResult, command: str) -> str:
    shape, limits = r.size.shape, r.size.limits
    return (
        f"{shape.rate:.0f} req/s for {r.load_seconds:.0f} s through the real Envoy "
        f"({r.tally.sent} requests, {r.tally.skipped} not sent, "
        f"{r.tally.unserved_share():.1%} not served), reproduced with `{command}`. "
        f"Warm-up {limits.warm_up_s:.0f} s; flat means: RSS slope over "
        f"{'all' if limits.slope_over_steady else 'the second half'} of the rest "
        f"< {limits.slope_mib_per_min} MiB/min, the second half's highest RSS at most "
        f"{limits.growth_mib} MiB above the first half's, fds (other than Redis "
        f"connections) and threads at the end at most {limits.fd_margin} / "
        f"{limits.thread_margin} above the first half's highest."
    )


def _inputs(r: SoakResult) -> str:
    p, size = r.population, r.size
    agents = size.shape.agent_variants
    rows = [
        ("users (own device ID and user agent; a session, or JWTs)", f"{p.users}"),
        (
            "user agents (variants per viewer)",
            f"{len(p.viewers) * agents + p.users - len(p.viewers)}",
        ),
        ("client certificates used once each (fresh)", f"{r.tally.fresh_certs_used}"),
        ("client certificates reused by session traffic (pinned)", f"{len(p.pinned)}"),
        (
            "JWTs (a fresh one per request, over the JWT users)",
            f"{r.tally.answered(frozenset({'jwt'}))}",
        ),
        ("forged session tokens", f"{len(p.forged)}"),
        ("TLS client sessions opened", f"{r.tally.handshakes}"),
        ("`tls.verify_cache_size` (lowered for the run)", f"{size.verify_cache_size}"),
        ("`jwt.cache_size` (lowered for the run)", f"{size.jwt_cache_size}"),
    ]
    mix = ", ".join(f"{k} {PATTERN.count(k)}/{len(PATTERN)}" for k in dict.fromkeys(PATTERN))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"Mix: {mix}.\n\n| distinct inputs | count |\n| --- | ---: |\n{table}"


def _over_time(r: SoakResult) -> str:
    lines = [
        "| t (s) | requests | RSS (MiB) | fds | of which Redis | threads | tasks "
        "| admitd CPU (% of a core) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    next_t, last = 0.0, r.samples[0]
    for s in r.samples:
        if s.t + 1e-6 < next_t and s is not r.samples[-1]:
            continue
        next_t = s.t + _ROW_EVERY_S
        tasks = "n/a" if s.tasks is None else str(s.tasks)
        cpu = 100 * (s.cpu_s - last.cpu_s) / (s.t - last.t) if s.t > last.t else 0.0
        lines.append(
            f"| {s.t:.0f} | {s.requests} | {s.rss_mib:.1f} | {s.fds} | {s.redis_connections} "
            f"| {s.threads} | {tasks} | {cpu:.0f} |"
        )
        last = s
    return "\n".join(lines)


def _outcomes(r: SoakResult) -> str:
    lines = ["| kind | answers |", "| --- | --- |"]
    for kind in dict.fromkeys(PATTERN):
        statuses = r.tally.statuses(kind)
        text = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        lines.append(f"| {kind} | {text} |")
    lines.append(f"| **wrongly admitted** | {r.tally.wrong_admits} |")
    return "\n".join(lines)


def _audit(r: SoakResult) -> str:
    a = r.audit
    chain = "yes" if r.chain_ok else "NO"
    notes = "; ".join(r.notes)
    return (
        f"Audit: {a.required} entries required (denials in the decision log, and "
        f"{r.tally.risky_admits} admits at high or critical risk), {a.recorded} recorded in "
        f"{r.audit_entries} stream entries, {a.lost} lost, {a.duplicated} duplicated, "
        f"{a.unexplained} unexplained; `admitd audit verify`: {chain}. {notes}."
    )

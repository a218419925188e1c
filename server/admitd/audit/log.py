"""`AuditLog`: append() never blocks or raises; a background task chains batches into Redis,
spools them locally while Redis is away and replays the spool, in order, when it returns.

A Check only queues what its audit needs (`record_decision`); the writer builds the
entries, coalesces identical plain denials (`coalesce.py`), seals and appends them.

With `durable_answers` (the default) queueing returns a receipt, settled once the entry
is in Redis or the fsync'd spool: the caller answers only then, so a SIGKILL can take no
decision that was answered without its entry (docs/audit.md, "Durable answers").
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis.asyncio as redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY, CollectorRegistry

from admitd.audit.checkpoint import write_checkpoint
from admitd.audit.coalesce import Coalescer, Policy
from admitd.audit.config import AuditConfig
from admitd.audit.decision import CapturedDecision, audit_event
from admitd.audit.entry import AuditEntry, entry_digest
from admitd.audit.metrics import DROPPED, REDIS, REPLAYED, AuditMetrics
from admitd.audit.receipt import Receipt
from admitd.audit.sealed import SealedEntry, open_entry, seal_entry
from admitd.audit.spool import Spool, SpoolBatch
from admitd.audit.stream import StreamAppender
from admitd.envelope import Sealer
from admitd.errors import (
    AdmitdError,
    EnvelopeError,
    KeyNotFound,
    KmsError,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from admitd.core.decision import Decision

__all__ = ["AuditLog", "Receipt"]

logger = logging.getLogger("admitd.audit")

_FLUSH_SECONDS = 0.05  # the longest an entry waits in memory before its batch goes out
# Entries waiting to be spooled, in queues' worth, before new ones are dropped.
_OVERFLOW_FACTOR = 10
_RETRY_SECONDS = 1.0  # how often an unreachable Redis is tried again
# Durable answers: how long a coalesced repeat may wait for its count to be written. The
# counts of every open window go out together then, so a flood from one source costs at
# most one follow-up entry per window this often, not one per writer batch.
_COUNT_LINGER_SECONDS = 0.02

Queued = AuditEntry | CapturedDecision
_Item = tuple[Queued, Receipt | None]


def _decisions(sealed: list[SealedEntry]) -> int:
    return sum(entry.count for entry in sealed)


def _settle(receipts: list[Receipt]) -> None:
    for receipt in receipts:
        if not receipt.done():
            receipt.set_result(None)


def _mismatch(entry: SealedEntry, plaintext: bytes) -> str | None:
    if hmac.compare_digest(entry_digest(plaintext), entry.digest):
        return None
    return "digest does not match the sealed entry"


def _event_name(item: Queued) -> str:
    return item.event_type if isinstance(item, AuditEntry) else item.event


class AuditLog:
    """The tamper-evident audit log of one replica (all replicas share one chain)."""

    def __init__(
        self,
        client: redis.Redis,
        sealer: Sealer,
        config: AuditConfig,
        *,
        registry: CollectorRegistry = REGISTRY,
        signing_key: Ed25519PrivateKey | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self._sealer, self._clock = config, sealer, clock
        self.client = client  # owned by the caller, who closes it after close()
        self.metrics = AuditMetrics(registry)
        self.spool = Spool(config.spool_file, config.spool_max_bytes, self.metrics)
        self._appender = StreamAppender(client, config.stream_key)
        self._signing_key = signing_key
        self._coalescer = Coalescer(
            config.coalesce_seconds,
            config.instance,
            max_windows=config.queue_max_entries,
            clock=monotonic,
        )
        self._queue: deque[_Item] = deque()
        self._overflow: list[_Item] = []  # spooled by the writer before the next batch
        self._lock = threading.Lock()  # the KMS adapter may call append() from a thread
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._stopped = False
        self._next_retry = 0.0
        self._held: list[Receipt] = []  # repeats whose count is not written yet
        self._counts_due = 0.0  # monotonic time by which pending counts are written; 0: none
        self._monotonic = monotonic

    def append(self, entry: AuditEntry) -> Receipt | None:
        """Queue `entry` (never coalesced); when the queue is full, it and the queue go to
        the spool next. The receipt (see the module docstring) is None off the loop."""
        return self._enqueue(entry)

    def record_decision(
        self, decision: Decision, *, source_ip: str, device_id: str, now: float
    ) -> Receipt | None:
        """The hot path of a Check's audit: queue the decision (immutable) and the facts its
        entry needs, or nothing when it is not audited. `now` is the decision's time."""
        event = audit_event(decision)
        if event is None:
            return None
        return self._enqueue(CapturedDecision(event, decision, source_ip, device_id, now))

    def use_policy(self, policy: Policy, privileged_roles: frozenset[str]) -> None:
        """Where the writer looks up whether a denial's route is privileged; until this is
        called no decision is coalesced (see docs/audit.md)."""
        self._coalescer.use_policy(policy, privileged_roles)

    @property
    def coalescing(self) -> int:
        """Decisions counted into a follow-up entry that is not written yet."""
        return self._coalescer.pending

    def _enqueue(self, entry: Queued) -> Receipt | None:
        receipt = self._receipt()
        with self._lock:
            if len(self._queue) < self.config.queue_max_entries:
                self._queue.append((entry, receipt))
                self._notify()
                return receipt
            # Queue first, then the new entry: the spool keeps arrival order. Sealing
            # awaits the KMS, so the writer spools them, ahead of anything queued later.
            if len(self._overflow) >= _OVERFLOW_FACTOR * self.config.queue_max_entries:
                # The writer is stuck (Redis and the spool both slow): memory stays bounded,
                # as the spool's own size bound keeps the disk bounded. Answered at once:
                # the loss is counted and logged, as for a full spool.
                self.metrics.appends.labels(DROPPED).inc()
                logger.critical("audit: writer behind, %s entry LOST", _event_name(entry))
                return None
            self._overflow += [*self._queue, (entry, receipt)]
            self._queue.clear()
            self._notify()
            return receipt

    def _receipt(self) -> Receipt | None:
        """A future on the writer's loop, when durable answers are on and the caller runs
        on that loop (the KMS adapter's thread does not wait)."""
        loop = self._loop
        if not self.config.durable_answers or loop is None or self._stopped:
            return None
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return loop.create_future() if running is loop else None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks.append(asyncio.create_task(self._run(), name="audit-writer"))
        if self._signing_key is not None:
            self._tasks.append(asyncio.create_task(self._checkpoints(), name="audit-checkpoints"))

    async def close(self) -> None:
        """Flush the queue and every pending coalesced count (to Redis or the spool), write
        a last checkpoint, stop."""
        self._closing = True
        self._notify()
        for task in self._tasks[1:]:
            task.cancel()
        if self._tasks:
            await self._tasks[0]
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        await self._checkpoint_once()

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue) + len(self._overflow)

    def _notify(self) -> None:
        if self._wake.is_set():  # the writer has not cleared it yet, so it takes what we added
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            overflow, batch = self._take()
            final = self._closing and not overflow and not batch
            items = overflow or batch
            counted: list[int] = []
            entries = self._entries([item for item, _ in items], counted, final=final)
            receipts = self._receipts(items, counted, flushed=not self._coalescer.pending)
            if overflow:
                await self._spool_entries(entries, len(overflow))
            elif entries:
                await self._write(entries, receipts)
            _settle(receipts)  # also those whose entry could not be built or sealed: lost
            if overflow or entries:
                continue
            if final:
                await self._replay(force=True)
                if self.queued:
                    continue  # queued during the replay: written before the writer stops
                self._stopped = True  # from now on no receipt: nothing would settle it
                return
            if not batch:
                await self._replay(force=False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_seconds())
                self._wake.clear()

    def _receipts(self, items: list[_Item], counted: list[int], *, flushed: bool) -> list[Receipt]:
        """The receipts to settle once this batch is durable: a counted repeat's waits
        (held) until the counts are written; when they are (`flushed`), all held ones."""
        ready: list[Receipt] = []
        repeats = set(counted)
        for position, (_, receipt) in enumerate(items):
            if receipt is not None:
                (self._held if position in repeats else ready).append(receipt)
        if flushed and self._held:
            ready += self._held
            self._held = []
        return ready

    def _idle_seconds(self) -> float:
        """How long the idle writer waits: until held counts are due, at the most."""
        if not self._counts_due:
            return _FLUSH_SECONDS
        return min(_FLUSH_SECONDS, max(0.0, self._counts_due - self._monotonic()))

    def _entries(self, items: list[Queued], counted: list[int], *, final: bool) -> list[AuditEntry]:
        """What to write for `items` (the positions of counted repeats into `counted`),
        then the follow-ups of windows that ended (all at the end). Never raises: the
        writer task must outlive any one bad entry."""
        total = self._coalescer.counted
        try:
            entries = self._coalescer.entries(items, counted)
        except Exception:
            self.metrics.appends.labels(DROPPED).inc(len(items))
            logger.exception("audit: %d queued entries could not be built: LOST", len(items))
            entries, counted[:] = [], []
        entries += self._coalescer.due(everything=final)
        if self.config.durable_answers:
            entries += self._counts_if_due(final=final)
        self.metrics.coalesced.inc(self._coalescer.counted - total)
        return entries

    def _counts_if_due(self, *, final: bool) -> list[AuditEntry]:
        """A repeat is answered once its count is in an entry: write what every open
        window counted so far (the windows stay open, so repeats still share entries) at
        most `_COUNT_LINGER_SECONDS` after the first count that is not written yet."""
        if not self._coalescer.pending:
            self._counts_due = 0.0
            return []
        now = self._monotonic()
        if not self._counts_due:
            self._counts_due = now + _COUNT_LINGER_SECONDS
        if final or now >= self._counts_due:
            self._counts_due = 0.0
            return self._coalescer.counts_so_far()
        return []

    def _take(self) -> tuple[list[_Item], list[_Item]]:
        """(overflow to spool, else a batch to write), under one lock: arrival order holds."""
        with self._lock:
            overflow, self._overflow = self._overflow, []
            count = 0 if overflow else min(len(self._queue), self.config.batch_max_entries)
            return overflow, [self._queue.popleft() for _ in range(count)]

    async def _write(self, batch: list[AuditEntry], receipts: list[Receipt]) -> None:
        sealed = await self._seal(batch)
        # While older entries wait in the spool, newer ones queue behind them there.
        if not self.spool.pending and await self._to_redis(sealed):
            self.metrics.appends.labels(REDIS).inc(_decisions(sealed))
            return
        self._spill(sealed)
        _settle(receipts)  # durable in the spool: answer before the replay
        await self._replay(force=False)

    async def _to_redis(self, sealed: list[SealedEntry]) -> bool:
        try:
            await self._appender.append(sealed)
        except StoreUnavailable as exc:
            logger.warning("audit: Redis unavailable (%s); spooling to %s", exc, self.spool.path)
            self._next_retry = self._clock() + _RETRY_SECONDS
            return False
        return True

    async def _replay(self, *, force: bool) -> None:
        """Move spooled entries into the stream, oldest first, until the spool is empty."""
        if not self.spool.pending or (not force and self._clock() < self._next_retry):
            return
        while self.spool.pending:
            if not force and self.queued:
                return  # new entries first (Checks may wait on them); the rest next round
            batch = await asyncio.to_thread(self.spool.read_batch, self.config.batch_max_entries)
            authentic = await self._authentic(batch)
            if authentic is None or (authentic and not await self._to_redis(authentic)):
                return
            await asyncio.to_thread(self.spool.commit, batch.end_offset)
            self.metrics.appends.labels(REPLAYED).inc(_decisions(authentic))
        logger.info("audit: spool %s replayed into Redis", self.spool.path)

    async def _authentic(self, batch: SpoolBatch) -> list[SealedEntry] | None:
        """The batch's records that open, under their AES-GCM tag, to their own digest; the
        others are quarantined. None when the KMS cannot answer now (replay later): a
        record that was not checked never enters the chain."""
        kept = []
        for position, entry in zip(batch.positions, batch.entries, strict=True):
            try:
                problem = _mismatch(entry, await open_entry(self._sealer, entry.envelope))
            except EnvelopeError as exc:
                problem = f"envelope does not open ({type(exc).__name__}: {exc})"
            except KeyNotFound as exc:
                problem = f"envelope names a key the provider does not hold ({exc})"
            except KmsError as exc:
                logger.warning("audit: spool replay waits for the KMS (%s)", exc)
                self._next_retry = self._clock() + _RETRY_SECONDS
                return None
            if problem is None:
                kept.append(entry)
            else:
                await asyncio.to_thread(self.spool.quarantine, position, entry, problem)
        return kept

    async def _seal(self, batch: list[AuditEntry]) -> list[SealedEntry]:
        """Each entry its own envelope (a fresh data key and nonce per entry)."""
        sealed = []
        for entry in batch:
            try:
                sealed.append(await seal_entry(self._sealer, entry))
            except AdmitdError as exc:
                # The KMS refused: nothing can be written sealed. Count it, never raise.
                self.metrics.appends.labels(DROPPED).inc(entry.decisions)
                logger.critical("audit: cannot seal %s entry (%s): LOST", entry.event_type, exc)
            except Exception:
                # A bug must cost this entry, not the writer task (and every later entry).
                self.metrics.appends.labels(DROPPED).inc(entry.decisions)
                logger.exception("audit: cannot seal %s entry: LOST", entry.event_type)
        return sealed

    def _spill(self, sealed: list[SealedEntry]) -> None:
        try:
            self.spool.append(sealed)
        except OSError as exc:
            self.metrics.appends.labels(DROPPED).inc(_decisions(sealed))
            logger.critical(
                "audit: spool %s unwritable (%s): %d entries LOST",
                self.spool.path,
                exc,
                len(sealed),
            )

    async def _spool_entries(self, entries: list[AuditEntry], queued: int) -> None:
        logger.warning(
            "audit: queue full (%d); %d queued decisions and events spooled as %d entries",
            self.config.queue_max_entries,
            queued,
            len(entries),
        )
        self._spill(await self._seal(entries))

    async def _checkpoints(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_seconds)
            await self._checkpoint_once()

    async def _checkpoint_once(self) -> None:
        if self._signing_key is None:
            return
        try:
            await write_checkpoint(
                self.client,
                self._signing_key,
                stream=self.config.stream_key,
                instance=self.config.instance,
                now=self._clock(),
            )
        except StoreUnavailable as exc:
            logger.warning("audit: checkpoint skipped, Redis unavailable (%s)", exc)

"""One of two admitd replicas SIGKILLed under load: the other keeps serving, and what the
dead one did stays true (one Redis, one audit chain).

Through replica A's admin API, before the kill: a user enrols TOTP and gets two sessions
(one stays valid, one is revoked through A just before A dies), and three wrong codes,
sent to A and B in turn, lock the user out. After the kill B must still admit the first
session, refuse the revoked one, and answer LOCKED_OUT to the right code. Right before
the kill a short burst of identical denials opens a coalescing window on each replica.
"""

from __future__ import annotations

import asyncio
import time

from tests.reliability.admin_api import AdminClient, wrong_code
from tests.reliability.fault_run import Run
from tests.reliability.load import Probe, ProbeMix, run_load
from tests.reliability.population import bearer
from tests.reliability.stack import StackSettings

__all__ = ["REPLICA_SETTINGS", "replica_killed"]

REPLICA_SETTINGS = StackSettings(replicas=2, admin_api=True)
USER, ORGANISATION, DEVICE = "replica-user", "acme", "laptop-1"


async def replica_killed(run: Run) -> None:
    stack = run.stack
    a, b = stack.replicas
    admin_a = AdminClient(stack.pki, a.admin_port)
    admin_b = AdminClient(stack.pki, b.admin_port)
    try:
        totp = await asyncio.to_thread(admin_a.enrol_totp, USER, ORGANISATION)
        kept, doomed = [
            await asyncio.to_thread(admin_a.create_session, USER, ORGANISATION, DEVICE)
            for _ in range(2)
        ]
        made_on_a = Probe("session-made-on-a", "session", "/app/", run.creds.alice, bearer(kept))
        revoked_on_a = Probe(
            "session-revoked-on-a", "session", "/app/", run.creds.alice, bearer(doomed)
        )
        run.mix.add([made_on_a, revoked_on_a])
        await asyncio.sleep(run.size.warm)
        wrong = wrong_code(totp)
        run.lockout = [
            await asyncio.to_thread(client.verify, kept, wrong)
            for client in (admin_a, admin_b, admin_a)
        ]
        run.lockout.append(await asyncio.to_thread(admin_b.verify, kept, totp.now()))
        # Repeated denials just before the kill: each replica has a coalescing window
        # open with repeats counted in it (what a crash in a flood of refusals meets).
        burst = ProbeMix([Probe("burst-no-cert", "cert", "/cert/", must_refuse=True)])
        run.side_loads.append(
            await run_load(
                f"https://localhost:{stack.https_port}",
                stack.pki.directory / "root.pem",
                burst,
                rate=200,
                seconds=0.1,
                tag="burst-",
            )
        )
        revoked_on_a.valid_until = time.monotonic()
        assert await asyncio.to_thread(admin_a.revoke, doomed)
        revoked_on_a.refused_from = time.monotonic()
        await asyncio.to_thread(a.kill)
        killed = time.monotonic()
        run.fault_end = killed  # from here B alone must serve: recovery is B taking over
        run.lockout.append(await asyncio.to_thread(admin_b.verify, kept, totp.now()))
        await asyncio.sleep(run.size.hold)
        run.down = (killed, time.monotonic())
        a.start(wait=False)
    finally:
        admin_a.close()
        admin_b.close()

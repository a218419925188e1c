"""The people `admitd dev` lets a browser sign in as, with no IdP: one list, read by the
dev sign-in page and the `admitd dev` banner (so what the banner says is what the page offers).

They are a constant, not config: they exist only with `dev_mode: true`, and the dev
policies (`policies/routes.yaml`, `routes.test.yaml`) and the README name these users.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEV_USERS", "DevUser"]


@dataclass(frozen=True, slots=True)
class DevUser:
    user_id: str
    organisation: str
    roles: frozenset[str]
    note: str  # what signing in as this user shows

    @property
    def role_list(self) -> str:
        return ", ".join(sorted(self.roles))


DEV_USERS: tuple[DevUser, ...] = (
    DevUser("ana", "acme", frozenset({"viewer"}), "not privileged: no MFA needed"),
    DevUser("fin", "acme", frozenset({"finance"}), "privileged: /finance/ needs fresh MFA"),
    DevUser("ada", "acme", frozenset({"admin"}), "privileged: every session route needs MFA"),
    DevUser("gus", "globex", frozenset({"viewer"}), "another organisation"),
)

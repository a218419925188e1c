"""admitd: an Envoy ext_authz policy server for identity-aware admission."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

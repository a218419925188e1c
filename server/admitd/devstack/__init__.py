"""The local stack: dev PKI, a real Envoy in front of admitd, and an echo upstream."""

from __future__ import annotations

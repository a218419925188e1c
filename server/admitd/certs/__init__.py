"""Client-certificate context: parsing, trusted-proxy forwarding, verification, caching."""

from __future__ import annotations

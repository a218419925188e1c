"""admitd's own gRPC API (`admitd.v1.Sessions`) over mutual TLS, and `admitd sessions`."""

from __future__ import annotations

from admitd.admin.config import AdminConfig, admin_config_from_fields
from admitd.admin.server import SessionLifetimes, start_admin_server
from admitd.admin.sessions import SessionAdmin

__all__ = [
    "AdminConfig",
    "SessionAdmin",
    "SessionLifetimes",
    "admin_config_from_fields",
    "start_admin_server",
]

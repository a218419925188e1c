"""The step-up web app: browsers with stale MFA verify a factor here and go back (same host)."""

from __future__ import annotations

from admitd.web.app import DEFAULT_COOKIE_NAME, build_web_app, start_web_server
from admitd.web.config import SECTION_KEYS, WebConfig, web_config_from_fields
from admitd.web.return_to import STEP_UP_PATH, STEP_UP_PREFIX, ReturnToSigner, step_up_location

__all__ = [
    "DEFAULT_COOKIE_NAME",
    "SECTION_KEYS",
    "STEP_UP_PATH",
    "STEP_UP_PREFIX",
    "ReturnToSigner",
    "WebConfig",
    "build_web_app",
    "start_web_server",
    "step_up_location",
    "web_config_from_fields",
]

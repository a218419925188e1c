"""The `web:` config section: the step-up app's listen address, signing key and WebAuthn RP."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from admitd.fields import Fields

__all__ = ["SECTION_KEYS", "WebConfig", "web_config_from_fields"]

SECTION_KEYS = {"listen", "signing_key_file", "rp_id", "rp_name", "origins"}
_MIN_KEY_BYTES = 32
_MAX_KEY_BYTES = 4096


@dataclass(frozen=True, slots=True)
class WebConfig:
    """`origins` are the exact origins browsers report (WebAuthn checks them)."""

    rp_id: str
    origins: tuple[str, ...]
    signing_key: bytes = field(repr=False)
    listen: str = "127.0.0.1:9002"
    rp_name: str = "admitd"


# The parser's defaults, so each is written once, above; the required fields are
# placeholders that nothing reads.
_DEFAULTS = WebConfig(rp_id="", origins=(), signing_key=b"")


def web_config_from_fields(fields: Fields) -> WebConfig:
    """Read the `web:` mapping; ConfigError naming file, line, key and fix on any problem."""
    rp_id = fields.text("rp_id").lower()
    if "/" in rp_id or ":" in rp_id or not rp_id.strip("."):
        raise fields.error("rp_id", f"expected a host name, got {rp_id!r}", "e.g. example.com")
    origins = fields.texts("origins") or [f"https://{rp_id}"]
    for origin in origins:
        if not _is_origin_for(origin, rp_id):
            raise fields.error(
                "origins",
                f"{origin!r} is not an https origin on {rp_id} or a subdomain of it",
                f"e.g. https://{rp_id}:8443 (scheme, host, optional port; no path)",
            )
    return WebConfig(
        rp_id=rp_id,
        origins=tuple(origins),
        signing_key=_signing_key(fields),
        listen=fields.address("listen", _DEFAULTS.listen),
        rp_name=fields.text("rp_name", _DEFAULTS.rp_name),
    )


def _is_origin_for(origin: str, rp_id: str) -> bool:
    try:
        parts = urlsplit(origin)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    # WebAuthn allows plain http only for localhost (a "potentially trustworthy" origin).
    secure = parts.scheme == "https" or (parts.scheme == "http" and host == "localhost")
    shape = origin == f"{parts.scheme}://{parts.netloc}" and not parts.username
    return secure and shape and (host == rp_id or host.endswith("." + rp_id))


def _signing_key(fields: Fields) -> bytes:
    key = "signing_key_file"
    path = Path(fields.doc.file).resolve().parent / fields.text(key)
    fix = f"create it with: head -c 32 /dev/urandom > {path} && chmod 600 {path}"
    path, data = fields.private_file(key, fix)
    if not _MIN_KEY_BYTES <= len(data) <= _MAX_KEY_BYTES:
        raise fields.error(
            key, f"{path} holds {len(data)} bytes; at least {_MIN_KEY_BYTES} are needed", fix
        )
    return data

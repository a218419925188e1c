"""Read what a browser posts (a form, a JSON object) so that no choice of bytes raises.

aiohttp decodes a form as UTF-8 and raises UnicodeDecodeError for other bytes, and
`request.json()` raises RecursionError (not ValueError) for JSON nested past the
interpreter's limit. A document just shallow enough to load can still overflow when it is
re-encoded or parsed again (the passkey library reads the credential's JSON once more), so
a JSON body is also refused past a depth no real one needs. Each reader answers "nothing"
instead, and the handler refuses as it does an empty form: a 4xx, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

__all__ = ["MAX_JSON_DEPTH", "form_fields", "is_nested_within", "json_object"]

MAX_JSON_DEPTH = 32  # a WebAuthn credential (RegistrationResponseJSON) nests 3 levels

FormFields = MultiDictProxy[str | bytes | bytearray | web.FileField]


async def form_fields(request: web.Request) -> FormFields:
    """The posted form; no fields when the body is not a readable form."""
    try:
        return await request.post()
    except ValueError:  # UnicodeDecodeError: the body is not UTF-8
        return MultiDictProxy(MultiDict())


async def json_object(request: web.Request) -> dict[str, object] | None:
    """The posted JSON object, or None for anything else."""
    if request.content_type != "application/json":
        return None  # also forces a CORS preflight on any cross-origin attempt
    try:
        document = await request.json()
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or not is_nested_within(document, MAX_JSON_DEPTH):
        return None
    return document


def is_nested_within(document: object, limit: int) -> bool:
    """True when no list or object in `document` lies deeper than `limit` (iterative)."""
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Iterable[object] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return False
        pending.extend((child, depth + 1) for child in children)
    return True

"""The step-up HTML: plain, accessible, no inline script or style (the CSP forbids both)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from admitd.web.return_to import STEP_UP_PATH

__all__ = ["StepUpView", "html_page", "message_page", "step_up_page"]


@dataclass(frozen=True, slots=True)
class StepUpView:
    csrf: str
    return_to: str  # the signed token (empty when there is none); echoed, never trusted
    has_totp: bool
    has_passkey: bool
    can_enrol_passkey: bool
    error: str = ""
    notice: str = ""


def step_up_page(view: StepUpView) -> str:
    sections = []
    if view.has_totp:
        sections.append(_totp_form(view))
    if view.has_passkey:
        sections.append(_passkey_section())
    if not view.has_totp and not view.has_passkey:
        sections.append(_no_factor(view.can_enrol_passkey))
    if view.can_enrol_passkey:
        sections.append(_enrol_section())
    meta = (
        f'<meta name="admitd-csrf" content="{escape(view.csrf)}">\n'
        f'<meta name="admitd-return-to" content="{escape(view.return_to)}">\n'
        f'<script src="{STEP_UP_PATH}/passkey.js" defer></script>\n'
    )
    body = (
        "<h1>Verify it's you</h1>\n"
        "<p>This page needs a recent check of your second factor. Choose one.</p>\n"
        f"{_status(view.error, view.notice)}\n" + "\n".join(sections)
    )
    return _document("Verify it's you", body, head=meta)


def message_page(title: str, message: str) -> str:
    """A page that only says what happened (no session, refused, unavailable)."""
    body = f'<h1>{escape(title)}</h1>\n<p role="alert">{escape(message)}</p>'
    return _document(title, body)


def html_page(title: str, body: str) -> str:
    """`body` (already escaped HTML) in admitd's page frame: stylesheet, no script."""
    return _document(title, body)


def _status(error: str, notice: str) -> str:
    # One live region for server and script messages alike; screen readers announce it.
    if error:
        return f'<p id="status" class="error" role="alert">{escape(error)}</p>'
    if notice:
        return f'<p id="status" role="alert">{escape(notice)}</p>'
    return '<p id="status" class="error" role="alert" hidden></p>'


def _totp_form(view: StepUpView) -> str:
    return f"""<section aria-labelledby="totp-heading">
<h2 id="totp-heading">Authenticator app</h2>
<form method="post" action="{STEP_UP_PATH}/totp">
<input type="hidden" name="csrf" value="{escape(view.csrf)}">
<input type="hidden" name="return_to" value="{escape(view.return_to)}">
<label for="code">6-digit code from your authenticator app</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
 pattern="[0-9]{{6,8}}" maxlength="8" required aria-describedby="code-help"{_invalid(view)}>
<p id="code-help" class="help">The code changes every 30 seconds.</p>
<button type="submit">Verify code</button>
</form>
</section>"""


def _invalid(view: StepUpView) -> str:
    return ' aria-invalid="true" autofocus' if view.error else " autofocus"


def _no_factor(can_enrol: bool) -> str:
    if can_enrol:
        return (
            "<p>You have no second factor yet. Add a passkey below, or ask your "
            "administrator to enrol an authenticator app.</p>"
        )
    # Only a session the login service has just authenticated may add the first factor.
    return (
        "<p>You have no second factor yet. To add a passkey, sign in again and choose to "
        "set one up, or ask your administrator to enrol an authenticator app.</p>"
    )


def _passkey_section() -> str:
    return """<section aria-labelledby="passkey-heading">
<h2 id="passkey-heading">Passkey</h2>
<button type="button" id="passkey-verify" hidden>Use a passkey</button>
<noscript><p>Passkeys need JavaScript. Use your authenticator app code instead.</p></noscript>
</section>"""


def _enrol_section() -> str:
    return """<section aria-labelledby="enrol-heading">
<h2 id="enrol-heading">Add a passkey</h2>
<p>Register this device's passkey (fingerprint, face or PIN) for future checks.</p>
<button type="button" id="passkey-register" hidden>Add a passkey</button>
<noscript><p>Adding a passkey needs JavaScript.</p></noscript>
</section>"""


def _document(title: str, body: str, *, head: str = "") -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{escape(title)} - admitd</title>
<link rel="stylesheet" href="{STEP_UP_PATH}/step-up.css">
{head}</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""

"""The step-up HTML: plain, accessible, no inline script or style (the CSP forbids both)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from admitd.web.return_to import STEP_UP_PATH

__all__ = [
    "SIGN_OUT_PATH",
    "FreshView",
    "StepUpView",
    "fresh_page",
    "html_page",
    "message_page",
    "step_up_page",
]

SIGN_OUT_PATH = f"{STEP_UP_PATH}/sign-out"


@dataclass(frozen=True, slots=True)
class StepUpView:
    csrf: str
    return_to: str  # the signed token (empty when there is none); echoed, never trusted
    has_totp: bool
    has_passkey: bool
    can_enrol_passkey: bool
    error: str = ""
    notice: str = ""
    user: str = ""
    organisation: str = ""
    destination: str = ""  # "host/path" the browser goes back to, verified ("" = none)
    why: tuple[str, ...] = ()  # sentences from the signed reason and the session itself
    reason: str = ""  # the signed reason value, echoed like return_to
    sign_out: str = SIGN_OUT_PATH  # where the sign-out form posts


@dataclass(frozen=True, slots=True)
class FreshView:
    """MFA is fresh already: nothing to ask (a passkey may just have been added)."""

    csrf: str
    user: str
    organisation: str
    verified: str  # "12 minutes ago"
    continue_path: str = ""  # the verified path to go on to ("" = none was given)
    destination: str = ""
    can_enrol_passkey: bool = False
    notice: str = ""
    sign_out: str = SIGN_OUT_PATH


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
        f'<meta name="admitd-reason" content="{escape(view.reason)}">\n'
        f'<script src="{STEP_UP_PATH}/passkey.js" defer></script>\n'
    )
    body = (
        "<h1>Verify it's you</h1>\n"
        f"{_who(view.user, view.organisation)}\n{_where(view.destination)}\n"
        f"{_why(view.why)}\n"
        f"{_status(view.error, view.notice)}\n" + "\n".join(sections) + "\n"
        f"{_actions(view.csrf, view.sign_out, cancel=True)}"
    )
    return _document("Verify it's you", body, head=meta)


def fresh_page(view: FreshView) -> str:
    """No question to ask: go on (a link, so a just-added passkey's note is read first),
    or, without a page to go back to, say so instead of asking again."""
    if view.continue_path:
        step = (
            f'<p><a class="button" href="{escape(view.continue_path)}">Continue to '
            f"{escape(view.destination)}</a></p>"
        )
    else:
        step = (
            "<p>No page asked for this check, so there is nothing to do here.</p>\n"
            '<p><a class="button" href="/">Go to the home page</a></p>'
        )
    notice = f'<p id="status" role="status">{escape(view.notice)}</p>\n' if view.notice else ""
    head = ""
    enrol = ""
    if view.can_enrol_passkey:
        head = (
            f'<meta name="admitd-csrf" content="{escape(view.csrf)}">\n'
            f'<script src="{STEP_UP_PATH}/passkey.js" defer></script>\n'
        )
        enrol = _enrol_section() + "\n"
        notice = notice or '<p id="status" role="status" hidden></p>\n'
    body = (
        "<h1>You're already verified</h1>\n"
        f"{_who(view.user, view.organisation)}\n"
        f"{notice}<p>Your second factor was verified {escape(view.verified)}.</p>\n"
        f"{step}\n{enrol}{_actions(view.csrf, view.sign_out, cancel=False)}"
    )
    return _document("You're already verified", body, head=head)


def message_page(title: str, message: str, *, link: tuple[str, str] | None = None) -> str:
    """A page that only says what happened (no session, refused, unavailable); `link` is
    (text, same-site href): the way on, reachable from the keyboard."""
    way_on = ""
    if link is not None:
        way_on = f'\n<p><a class="button" href="{escape(link[1])}">{escape(link[0])}</a></p>'
    body = f'<h1>{escape(title)}</h1>\n<p role="alert">{escape(message)}</p>{way_on}'
    return _document(title, body)


def html_page(title: str, body: str) -> str:
    """`body` (already escaped HTML) in admitd's page frame: stylesheet, no script."""
    return _document(title, body)


def _status(error: str, notice: str) -> str:
    # One live region for server and script messages alike; screen readers announce it.
    if error:
        return f'<p id="status" class="error" role="alert">{escape(error)}</p>'
    if notice:
        return f'<p id="status" role="status">{escape(notice)}</p>'
    return '<p id="status" class="error" role="alert" hidden></p>'


def _who(user: str, organisation: str) -> str:
    if not user:
        return ""
    org = f" of <strong>{escape(organisation)}</strong>" if organisation else ""
    return f'<p class="who">Signed in as <strong>{escape(user)}</strong>{org}.</p>'


def _where(destination: str) -> str:
    if not destination:
        return "<p>After this check you will go to this site's home page.</p>"
    shown = f'<strong class="url">{escape(destination)}</strong>'
    return f"<p>After this check you will return to {shown}.</p>"


def _why(lines: tuple[str, ...]) -> str:
    if not lines:
        return ""
    items = "\n".join(f"<li>{escape(line)}</li>" for line in lines)
    return (
        '<section aria-labelledby="why-heading">\n'
        f'<h2 id="why-heading">Why you are asked</h2>\n<ul>\n{items}\n</ul>\n</section>'
    )


def _actions(csrf: str, sign_out: str, *, cancel: bool) -> str:
    """Cancel (home: the page that sent us here would only ask again) and sign out."""
    link = '<a href="/">Cancel and go to the home page</a>\n' if cancel else ""
    return f"""<footer class="actions">
{link}<form method="post" action="{escape(sign_out)}">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<button type="submit" class="secondary">Sign out</button>
</form>
</footer>"""


def _totp_form(view: StepUpView) -> str:
    return f"""<section aria-labelledby="totp-heading">
<h2 id="totp-heading">Authenticator app</h2>
<form method="post" action="{STEP_UP_PATH}/totp">
<input type="hidden" name="csrf" value="{escape(view.csrf)}">
<input type="hidden" name="return_to" value="{escape(view.return_to)}">
<input type="hidden" name="reason" value="{escape(view.reason)}">
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

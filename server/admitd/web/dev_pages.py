"""The dev sign-in HTML: the list of dev users, and the TOTP enrolment page (QR + key)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from admitd.web.dev_users import DevUser
from admitd.web.pages import html_page

__all__ = [
    "DEV_PREFIX",
    "DEV_SIGN_IN_PATH",
    "DEV_TOTP_PATH",
    "TotpView",
    "sign_in_page",
    "totp_page",
]

DEV_PREFIX = "/.admitd/dev"
DEV_SIGN_IN_PATH = f"{DEV_PREFIX}/sign-in"
DEV_TOTP_PATH = f"{DEV_PREFIX}/totp"


@dataclass(frozen=True, slots=True)
class TotpView:
    csrf: str
    return_to: str  # a signed token for the path to continue to
    continue_path: str  # that path, verified: the "skip" link
    user: str
    qr_svg: str = ""  # empty after a failed confirmation: the secret is sealed by then
    secret: str = ""
    error: str = ""


def sign_in_page(users: tuple[DevUser, ...], csrf: str, return_to: str, error: str = "") -> str:
    choices = "\n".join(_user_choice(user, checked=index == 0) for index, user in enumerate(users))
    body = f"""<h1>Dev sign-in</h1>
<p>This admitd runs with <code>dev_mode: true</code>: pick who you are, no password and
no identity provider. A real deployment signs in at its IdP (<code>oidc:</code>).</p>
{_status(error)}
<form method="post" action="{DEV_SIGN_IN_PATH}">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<input type="hidden" name="return_to" value="{escape(return_to)}">
<fieldset>
<legend>Sign in as</legend>
{choices}
</fieldset>
<p><input type="checkbox" id="enrol-totp" name="enrol_totp" value="1">
<label for="enrol-totp">Also enrol an authenticator app (TOTP)</label></p>
<p class="help">A privileged user (finance, admin, ...) with no second factor is refused:
enrol one here, or add a passkey on the step-up page later.</p>
<button type="submit">Sign in</button>
</form>"""
    return html_page("Dev sign-in", body)


def totp_page(view: TotpView) -> str:
    scan = (
        f"""<p>Scan this code with an authenticator app, or type the key by hand.</p>
{view.qr_svg}
<p>Key: <code id="totp-secret">{escape(_grouped(view.secret))}</code></p>"""
        if view.qr_svg
        else f'<p><a href="{DEV_SIGN_IN_PATH}">Sign in again</a> for a new code to scan.</p>'
    )
    body = f"""<h1>Add an authenticator app</h1>
<p>Signed in as <strong>{escape(view.user)}</strong>.</p>
{_status(view.error)}
{scan}
<form method="post" action="{DEV_TOTP_PATH}">
<input type="hidden" name="csrf" value="{escape(view.csrf)}">
<input type="hidden" name="return_to" value="{escape(view.return_to)}">
<label for="code">6-digit code from your authenticator app</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
 pattern="[0-9]{{6,8}}" maxlength="8" required aria-describedby="code-help"{_invalid(view.error)}>
<p id="code-help" class="help">Confirming turns the factor on. Each code works once: if the
next page asks for one, wait for a new code.</p>
<button type="submit">Confirm code</button>
</form>
<p><a href="{escape(view.continue_path)}">Skip: continue without an authenticator app</a></p>"""
    return html_page("Add an authenticator app", body)


def _user_choice(user: DevUser, *, checked: bool) -> str:
    ident = f"user-{escape(user.user_id)}"
    check = " checked" if checked else ""
    return (
        f'<p><input type="radio" id="{ident}" name="user" value="{escape(user.user_id)}"'
        f' aria-describedby="{ident}-note"{check}>\n'
        f'<label for="{ident}">{escape(user.user_id)} ({escape(user.organisation)}:'
        f" {escape(user.role_list)})</label>\n"
        f'<span id="{ident}-note" class="help">{escape(user.note)}</span></p>'
    )


def _status(error: str) -> str:
    if not error:
        return ""
    return f'<p id="status" class="error" role="alert">{escape(error)}</p>'


def _invalid(error: str) -> str:
    return ' aria-invalid="true" autofocus' if error else ""


def _grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))

"""Signed return_to tokens: same host only, relative paths only, short-lived, tamper-evident."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from admitd.web.return_to import (
    STEP_UP_PATH,
    STEP_UP_PREFIX,
    ReturnToSigner,
    is_safe_relative_path,
    step_up_location,
)

KEY = b"k" * 32
NOW = 1_700_000_000.0
HOST = "app.example.com:8443"


@pytest.fixture
def signer() -> ReturnToSigner:
    return ReturnToSigner(KEY)


def test_round_trip_keeps_path_and_query(signer: ReturnToSigner) -> None:
    token = signer.sign(HOST, "/admin/reports?year=2024&q=a%20b", NOW)
    assert signer.verify(token, HOST, NOW + 1) == "/admin/reports?year=2024&q=a%20b"


def test_host_is_compared_case_insensitively(signer: ReturnToSigner) -> None:
    assert signer.verify(signer.sign("App.Example.COM:8443", "/x", NOW), HOST, NOW) == "/x"


@pytest.mark.parametrize(
    "host", ["evil.example.com:8443", "app.example.com", "app.example.com:8444"]
)
def test_token_for_another_host_is_refused(signer: ReturnToSigner, host: str) -> None:
    assert signer.verify(signer.sign(HOST, "/x", NOW), host, NOW) is None


def test_expired_token_is_refused(signer: ReturnToSigner) -> None:
    token = signer.sign(HOST, "/x", NOW)
    assert signer.verify(token, HOST, NOW + 599) == "/x"
    assert signer.verify(token, HOST, NOW + 600) is None


def test_token_from_far_future_is_refused(signer: ReturnToSigner) -> None:
    # A token whose expiry is further out than any signer would set was not made by one.
    assert signer.verify(signer.sign(HOST, "/x", NOW + 3600), HOST, NOW) is None


def test_other_key_is_refused(signer: ReturnToSigner) -> None:
    assert ReturnToSigner(b"o" * 32).verify(signer.sign(HOST, "/x", NOW), HOST, NOW) is None


@pytest.mark.parametrize("part", [1, 2, 3], ids=["expiry", "path", "mac"])
def test_tampered_token_is_refused(signer: ReturnToSigner, part: int) -> None:
    parts = signer.sign(HOST, "/x", NOW).split(".")
    parts[part] = parts[part][:-1] + ("A" if parts[part][-1] != "A" else "B")
    if part == 1:
        parts[1] = str(int(NOW) + 300)
    assert signer.verify(".".join(parts), HOST, NOW) is None


@pytest.mark.parametrize(
    "token", ["", "v1", "v1.1.2", "v2.1.L3g.mac", "v1.x.L3g.mac", "v1.1.!!.mac", "a" * 9000]
)
def test_garbage_is_refused(signer: ReturnToSigner, token: str) -> None:
    assert signer.verify(token, HOST, NOW) is None


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.example/x",
        "//evil.example/x",
        "/\\evil.example",
        "\\\\evil.example",
        "/a\\b",
        "/\t/evil.example",
        "/\n/evil.example",
        "/ x",
        "evil.example",
        "",
        "javascript:alert(1)",
        "/caf\u00e9",
        "/" + "a" * 5000,
    ],
    ids=repr,
)
def test_unsafe_paths_are_never_signed(signer: ReturnToSigner, path: str) -> None:
    assert not is_safe_relative_path(path)
    with pytest.raises(ValueError, match="relative path"):
        signer.sign(HOST, path, NOW)


def test_unsafe_path_inside_a_valid_mac_is_still_refused() -> None:
    """Defence in depth: even a correctly signed '//evil' (old signer, bug) is not returned."""
    import base64
    import hashlib
    import hmac

    encoded = base64.urlsafe_b64encode(b"//evil.example").rstrip(b"=").decode()
    expires = str(int(NOW) + 60)
    message = b"\x00".join((HOST.encode(), expires.encode(), encoded.encode()))
    mac = hmac.new(KEY, b"admitd/return-to/v1\x00" + message, hashlib.sha256).digest()
    token = f"v1.{expires}.{encoded}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert ReturnToSigner(KEY).verify(token, HOST, NOW) is None


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ReturnToSigner(b"short")


def test_repr_hides_the_key(signer: ReturnToSigner) -> None:
    assert "kkkk" not in repr(signer)


def test_step_up_location_carries_a_verifiable_token(signer: ReturnToSigner) -> None:
    location = step_up_location(signer, HOST, "/admin/?tab=1", NOW)
    parts = urlsplit(location)
    assert location.startswith(STEP_UP_PREFIX + "/") and parts.path == STEP_UP_PATH
    assert not parts.netloc and not parts.scheme
    (token,) = parse_qs(parts.query)["return_to"]
    assert signer.verify(token, HOST, NOW) == "/admin/?tab=1"


def test_step_up_location_replaces_an_unsafe_path_with_root(signer: ReturnToSigner) -> None:
    (token,) = parse_qs(urlsplit(step_up_location(signer, HOST, "//evil", NOW)).query)["return_to"]
    assert signer.verify(token, HOST, NOW) == "/"


def test_subkeys_differ_per_label_and_from_the_key(signer: ReturnToSigner) -> None:
    assert signer.subkey("csrf") != signer.subkey("other")
    assert KEY not in signer.subkey("csrf")


@pytest.mark.parametrize(
    ("edit", "host"),
    [
        pytest.param(lambda t: t[:-1] + "\u00e9", HOST, id="non-ascii-mac"),
        pytest.param(lambda t: t.replace("v1.", "v1.\u00b2", 1), HOST, id="superscript-expiry"),
        pytest.param(lambda t: t, HOST + "\udcff", id="surrogate-host"),
        pytest.param(lambda t: t[:-1] + "\udcff", HOST, id="surrogate-mac"),
    ],
)
def test_text_that_admitd_never_signs_is_refused_not_raised(
    signer: ReturnToSigner, edit: Callable[[str], str], host: str
) -> None:
    """The query and the Host are the client's: hmac.compare_digest raised TypeError for
    non-ASCII str, and encoding a lone surrogate (aiohttp's surrogateescape for bytes that
    are not UTF-8) raised UnicodeEncodeError: a 500 on the step-up page."""
    assert signer.verify(edit(signer.sign(HOST, "/x", NOW)), host, NOW) is None

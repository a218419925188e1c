"""The inline-SVG QR code draws exactly the modules qrcode computed (quiet zone included)."""

from __future__ import annotations

import re

import qrcode  # type: ignore[import-untyped]
from qrcode.constants import ERROR_CORRECT_M  # type: ignore[import-untyped]

from admitd.web.qr_svg import qr_svg_from_text

URI = "otpauth://totp/admitd:fin?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=admitd"


def _matrix(text: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    return matrix


def _drawn(svg: str, width: int) -> list[list[bool]]:
    grid = [[False] * width for _ in range(width)]
    path = re.search(r'<path fill="#000" d="([^"]*)"', svg)
    assert path is not None
    for x, y, run in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path.group(1)):
        for column in range(int(x), int(x) + int(run)):
            assert not grid[int(y)][column], "a module drawn twice"
            grid[int(y)][column] = True
    return grid


def test_the_svg_draws_every_dark_module_and_nothing_else() -> None:
    matrix = _matrix(URI)
    svg = qr_svg_from_text(URI, label="QR code")
    assert f'viewBox="0 0 {len(matrix)} {len(matrix)}"' in svg
    assert _drawn(svg, len(matrix)) == matrix


def test_the_label_is_escaped_and_there_is_no_style_attribute() -> None:
    svg = qr_svg_from_text(URI, label='a "quoted" <label>')
    assert 'aria-label="a &quot;quoted&quot; &lt;label&gt;"' in svg
    assert "style" not in svg  # the CSP allows no inline style

"""A QR code as inline SVG: the page embeds it, so `img-src 'self'` needs no data: URI."""

from __future__ import annotations

from html import escape

import qrcode  # type: ignore[import-untyped]
from qrcode.constants import ERROR_CORRECT_M  # type: ignore[import-untyped]

__all__ = ["qr_svg_from_text"]


def qr_svg_from_text(text: str, *, label: str, size: int = 240) -> str:
    """An <svg> of `text` (quiet zone included), one path of dark runs, `label` for readers.

    Presentation attributes (`fill`), not `style`: the CSP allows no inline style."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    width = len(matrix)
    runs = "".join(_row_path(y, row) for y, row in enumerate(matrix))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}"'
        f' width="{size}" height="{size}" viewBox="0 0 {width} {width}"'
        ' shape-rendering="crispEdges">'
        f'<rect width="{width}" height="{width}" fill="#fff"/>'
        f'<path fill="#000" d="{runs}"/></svg>'
    )


def _row_path(y: int, row: list[bool]) -> str:
    parts, x = [], 0
    while x < len(row):
        if not row[x]:
            x += 1
            continue
        start = x
        while x < len(row) and row[x]:
            x += 1
        parts.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
    return "".join(parts)

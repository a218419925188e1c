"""An otpauth:// URI as a QR code PNG, written without an imaging library.

qrcode computes the module matrix; the PNG (RFC 2083: 1-bit greyscale, one IDAT)
is a few lines of zlib, which spares a Pillow or pypng dependency.
"""

from __future__ import annotations

import base64
import struct
import zlib

import qrcode  # type: ignore[import-untyped]
from qrcode.constants import ERROR_CORRECT_M  # type: ignore[import-untyped]

__all__ = ["qr_png_base64", "qr_png_from_text"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def qr_png_from_text(text: str, *, scale: int = 6) -> bytes:
    """A PNG of `text` as a QR code, `scale` pixels per module, quiet zone included."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    rows = [_packed_row(row, scale) for row in matrix for _ in range(scale)]
    size = len(matrix) * scale
    header = struct.pack(">IIBBBBB", size, size, 1, 0, 0, 0, 0)  # 1-bit greyscale
    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 per scanline
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw, 9)),
            _chunk(b"IEND", b""),
        )
    )


def qr_png_base64(text: str) -> str:
    return base64.b64encode(qr_png_from_text(text)).decode("ascii")


def _packed_row(modules: list[bool], scale: int) -> bytes:
    # A dark module is black (bit 0); light modules and the padding bits are white.
    bits = "".join(("0" if dark else "1") * scale for dark in modules)
    bits += "1" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

"""Encoders behind ``write_image``: Pillow for 8-bit files; for 16-bit colour, which Pillow cannot write,
two small encoders of our own (PNG with "Up"-filtered rows, deflate-compressed baseline TIFF)."""

from __future__ import annotations

import struct
import zlib
from contextlib import suppress
from typing import BinaryIO

import numpy as np
from PIL import Image

# TIFF tags that describe a file's pixel layout, never copied from the input's EXIF into a TIFF we write: width,
# height, samples, compression, strips, planar config, extra samples, thumbnail, ICC profile.
_TIFF_LAYOUT_TAGS = (254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 338, 339, 513, 514, 34675)
# The colour space an ICC profile must declare to be kept for each output mode.
_ICC_SPACE = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}


def encode(f: BinaryIO, pixels: np.ndarray, fmt: str, depth: int, icc: bytes | None, exif: bytes | None) -> None:
    """Encode [H, W, C] pixels (C = 1..4: L, LA, RGB, RGBA) as ``fmt`` into ``f``."""
    channels = pixels.shape[2]
    if depth == 16:
        icc = icc if icc and icc[16:20] == _ICC_SPACE[("L", "LA", "RGB", "RGBA")[channels - 1]] else None
        f.write(_encode_png16(pixels, icc, exif) if fmt == "PNG" else _encode_tiff16(pixels, icc))
        return
    if fmt == "WEBP" and channels <= 2 or fmt == "BMP" and channels == 2:  # no gray mode: use RGB(A)
        pixels = np.concatenate([pixels[..., :1].repeat(3, axis=2), pixels[..., 1:]], axis=2)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    options: dict[str, object] = {}
    if fmt != "BMP":
        if icc and icc[16:20] == _ICC_SPACE[image.mode]:
            options["icc_profile"] = icc
        if exif:
            options["exif"] = _exif_for_tiff(exif) if fmt == "TIFF" else exif
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(quality=95)
    image.save(f, format=fmt, **options)  # TIFF stays uncompressed: libtiff rejects EXIF sub-IFDs


def _exif_for_tiff(exif: bytes) -> Image.Exif:
    """EXIF tags to merge into a TIFF directory, without any that describe another file's pixel layout."""
    tags = Image.Exif()
    with suppress(Exception):  # unreadable EXIF is dropped rather than failing the write
        tags.load(exif)
    for tag in _TIFF_LAYOUT_TAGS:
        tags.pop(tag, None)
    return tags


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png16(pixels: np.ndarray, icc: bytes | None, exif: bytes | None) -> bytes:
    """A 16-bit PNG (gray, gray+alpha, RGB or RGBA) with every row "Up"-filtered."""
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels, dtype=">u2").view(np.uint8).reshape(height, width * channels * 2)
    up = rows.copy()
    up[1:] -= rows[:-1]  # filter type 2: difference to the row above, modulo 256
    scanlines = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1)
    idat = zlib.compress(scanlines.tobytes(), 6)
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    chunks = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00")))
    chunks += [_png_chunk(b"IDAT", idat[i : i + 2**20]) for i in range(0, len(idat), 2**20)]
    chunks.append(_png_chunk(b"IEND", b""))
    return b"".join(chunks)


def _encode_tiff16(pixels: np.ndarray, icc: bytes | None) -> bytes:
    """A little-endian baseline TIFF, 16 bits per sample, one deflate-compressed strip.

    Layout: 8-byte header, the strip, then the directory and the values too long to fit in it.
    """
    height, width, channels = pixels.shape
    strip = zlib.compress(pixels.astype("<u2").tobytes(), 6)
    short, long_, undefined = 3, 4, 7
    tags: list[tuple[int, int, list[int] | bytes]] = [
        (256, long_, [width]),
        (257, long_, [height]),
        (258, short, [16] * channels),  # BitsPerSample
        (259, short, [8]),  # Compression: Adobe deflate
        (262, short, [1 if channels <= 2 else 2]),  # Photometric: BlackIsZero or RGB
        (273, long_, [8]),  # StripOffsets: right after the header
        (277, short, [channels]),
        (278, long_, [height]),  # RowsPerStrip
        (279, long_, [len(strip)]),
        (284, short, [1]),  # PlanarConfiguration: contiguous
    ]
    if channels in (2, 4):
        tags.append((338, short, [2]))  # ExtraSamples: unassociated alpha
    if icc:
        tags.append((34675, undefined, icc))
    ifd_offset = 8 + len(strip) + len(strip) % 2
    extra_offset = ifd_offset + 2 + 12 * len(tags) + 4
    entries, extra = [], b""
    for tag, kind, values in tags:
        data = bytes(values) if kind == undefined else struct.pack(f"<{len(values)}{'H' if kind == short else 'I'}", *values)
        if len(data) <= 4:
            value_field = data.ljust(4, b"\x00")
        else:
            value_field = struct.pack("<I", extra_offset + len(extra))
            extra += data + b"\x00" * (len(data) % 2)
        entries.append(struct.pack("<HHI", tag, kind, len(values)) + value_field)
    out = b"II*\x00" + struct.pack("<I", ifd_offset) + strip + b"\x00" * (len(strip) % 2)
    out += struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", 0) + extra
    if len(out) >= 2**32:
        raise ValueError("image too large for a TIFF file (4 GiB); write .png instead")
    return out


# --------------------------------------------------------------------------------------------------
# Paths

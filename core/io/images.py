"""Image files in and out: the I/O edge of air-restore.

``read_image`` turns a PNG, JPEG, TIFF, WebP or BMP file into a float RGB tensor plus everything needed
to write the result back the way it came in (alpha, mode, bit depth, ICC profile, EXIF).
``write_image`` does the reverse, atomically. The restoration code (models, tiling, blending) only ever
sees tensors; this module (``air_restore.core.io``) is the one place that touches image files.

Every problem with an input file becomes one ``ImageReadError`` whose message is a single line,
``"<path>: <reason>"``; no traceback reaches the user for a bad image.

16-bit colour: Pillow has no 16-bit-per-channel RGB mode. It opens 16-bit RGB(A) PNG and TIFF files as
8-bit RGB(A), silently keeping only the high byte of each sample. ``read_image`` detects these files
and decodes them a second time with Pillow's own decoder, told to unpack the *low* byte of each sample
instead, then joins the two halves, so all 16 bits are kept without any extra dependency. Writing
16-bit images goes through two small encoders here (PNG and deflate-compressed baseline TIFF), since
Pillow cannot write 16-bit colour either. Not supported, with a clear error: 16-bit gray+alpha PNG
and 16-bit planar ("separate") TIFF.
"""

from __future__ import annotations

import os
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .files import atomic_write, check_writable, sweep_temporaries
from ..errors import UserError, InvalidValueError, MissingPathError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "atomic_write",
    "check_writable",
    "sweep_temporaries",
    "LoadedImage",
    "iter_image_paths",
    "output_path_for",
    "read_image",
    "save_png",
    "write_image",
]

#: Known image suffixes (lower case) and the Pillow format each one is written as.
IMAGE_SUFFIXES: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_FORMATS = ("BMP", "JPEG", "PNG", "TIFF", "WEBP")
_FORMAT_ALIASES = {"MPO": "JPEG"}  # phone cameras write JPEGs with extra frames; Pillow calls them MPO
_GRAY16_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La"}) | _GRAY16_MODES
_ORIENTATION_TAG = 0x0112
# Width, height, samples, compression, strips, planar config, extra samples, thumbnail, ICC profile.
_TIFF_LAYOUT_TAGS = (254, 256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 338, 339, 513, 514, 34675)
_ICC_SPACE = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB "}
_PIL_LIMIT_LOCK = threading.Lock()


class ImageReadError(UserError):
    """An input image cannot be read. The message is one line: ``"<path>: <reason>"``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason

    def __reduce__(self) -> tuple[type[ImageReadError], tuple[Path, str]]:
        return type(self), (self.path, self.reason)


@dataclass
class LoadedImage:
    """A decoded image and what is needed to write a restored version of it back."""

    rgb: torch.Tensor = field(repr=False)  # [3, H, W] float32 in [0, 1], EXIF orientation applied
    alpha: torch.Tensor | None = field(repr=False)  # [1, H, W] float32 in [0, 1], never restored
    mode: str  # Pillow's mode for the file as stored: "L", "RGB", "RGBA", "P", "CMYK", "I;16", ...
    bit_depth: int  # 8 or 16 bits per sample
    format: str  # Pillow format name: "PNG", "JPEG", "TIFF", "WEBP" or "BMP"
    path: Path
    icc_profile: bytes | None = field(default=None, repr=False)
    exif: bytes | None = field(default=None, repr=False)  # orientation reset to 1 once applied

    @property
    def is_gray(self) -> bool:
        """True when the file had no colour (gray or bilevel, with or without alpha)."""
        return self.mode in _GRAY_MODES


# --------------------------------------------------------------------------------------------------
# Reading


#: Memory `air restore` needs per pixel of the image, whole-image buffers included (issue 13 measured
#: about 12 GB for 200 MP), and the default pixel limit that keeps that under about 4 GB.
BYTES_PER_PIXEL = 60
MAX_PIXELS = 64_000_000


def read_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read an image file into a ``LoadedImage``.

    Raises ``ImageReadError`` (one-line message naming the file) for a missing, empty, unreadable,
    unsupported, truncated or corrupt file, and for one with more than ``max_pixels`` pixels (checked
    from the header, before any pixel is decoded).
    """
    path = Path(path)
    _check_is_readable_file(path)
    with _pil_pixel_limit_disabled():
        try:
            img = Image.open(path)
        except UnidentifiedImageError:
            raise ImageReadError(path, "not an image file (cannot identify format)") from None
        except OSError as exc:
            if exc.errno is not None:  # the file system's complaint, e.g. permission denied
                raise ImageReadError(path, f"cannot open ({exc.strerror or exc})") from None
            raise ImageReadError(path, "truncated or corrupt image data") from None
        except (SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error):
            raise ImageReadError(path, "truncated or corrupt image data") from None
        with img:
            fmt = _FORMAT_ALIASES.get(img.format or "", img.format or "?")
            if fmt not in _FORMATS:
                raise ImageReadError(path, f"unsupported format {fmt} (supported: {', '.join(_FORMATS)})")
            width, height = img.size
            if width * height > max_pixels:
                need_gb = width * height * BYTES_PER_PIXEL / 1e9
                raise ImageReadError(
                    path,
                    f"image too large ({width}×{height} pixels, limit {max_pixels:,}): restoring it needs "
                    f"about {need_gb:.1f} GB of memory; if you have that, raise the limit with --max-pixels",
                )
            mode = img.mode
            rawmodes = [_tile_rawmode(tile) for tile in img.tile]  # img.tile is emptied by load()
            try:
                img.load()
                exif, orientation = _exif_and_orientation(img)
                pixels, bit_depth = _decode_pixels(img, path, fmt, rawmodes)
            except ImageReadError:
                raise
            except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error):
                raise ImageReadError(path, "truncated or corrupt image data") from None
            icc_profile = img.info.get("icc_profile") or None

    scaled = _apply_orientation(pixels, orientation).astype(np.float32, order="C")
    scaled /= float(2**bit_depth - 1)
    tensor = torch.from_numpy(scaled).permute(2, 0, 1)  # [C, H, W]
    channels = tensor.shape[0]
    colour = tensor[: 1 if channels <= 2 else 3]
    alpha = tensor[channels - 1 :].contiguous() if channels in (2, 4) else None
    rgb = colour.expand(3, -1, -1).contiguous()
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        mode=mode,
        bit_depth=bit_depth,
        format=fmt,
        path=path,
        icc_profile=icc_profile,
        exif=exif,
    )


def _check_is_readable_file(path: Path) -> None:
    """Turn the common file-system problems into one-line errors before Pillow sees the path."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except OSError as exc:
        raise ImageReadError(path, f"cannot access ({exc.strerror or exc})") from None
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    if st.st_size == 0:
        raise ImageReadError(path, "file is empty")


@contextmanager
def _pil_pixel_limit_disabled() -> Iterator[None]:
    """Switch off Pillow's decompression-bomb check; ``read_image`` applies ``max_pixels`` itself.

    Pillow's limit is a module global, checked in ``Image.open`` and (for TIFF) in ``load``, so it is
    switched off for exactly that span, under a lock, and restored afterwards.
    """
    with _PIL_LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _tile_rawmode(tile: tuple) -> str:
    """The raw mode Pillow will unpack a tile with: ``args`` is the raw mode or starts with it."""
    args = tile[3]
    return args if isinstance(args, str) else str(args[0]) if args else ""


def _exif_and_orientation(img: Image.Image) -> tuple[bytes | None, int]:
    """Return the EXIF bytes (orientation reset to 1 when it will be applied) and the orientation."""
    raw = img.info.get("exif")
    raw = raw if isinstance(raw, bytes) and raw else None
    try:
        exif = img.getexif()
        orientation = int(exif.get(_ORIENTATION_TAG, 1))
        if orientation not in range(1, 9):
            return raw, 1
        if orientation != 1 and raw is not None:
            exif[_ORIENTATION_TAG] = 1
            raw = exif.tobytes()
    except Exception:  # broken EXIF must not stop the image from being restored
        return raw, 1
    return raw, orientation


def _decode_pixels(img: Image.Image, path: Path, fmt: str, rawmodes: list[str]) -> tuple[np.ndarray, int]:
    """Return the loaded pixels as [H, W, C] uint8/uint16 with C in 1..4 (L, LA, RGB, RGBA)."""
    mode = img.mode
    if mode in _GRAY16_MODES:
        gray = np.asarray(img)
        if mode == "I":  # 32-bit container: older Pillow reads 16-bit gray PNG this way
            gray = np.clip(gray, 0, 65535)
        return gray.astype(np.uint16)[..., None], 16
    if mode in ("RGB", "RGBA") and _is_16bit_colour(img, path, fmt, rawmodes):
        return _decode_16bit_colour(img, path), 16
    if mode == "1":
        img = img.convert("L")
    elif mode in ("P", "PA", "L", "RGB") and ("transparency" in img.info or mode == "PA"):
        img = img.convert("LA" if mode == "L" else "RGBA")
    elif mode == "P":
        img = img.convert("RGB")
    elif mode in ("La", "RGBa"):
        img = img.convert(mode.upper())
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        img = img.convert("RGB")
    if img.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageReadError(path, f"unsupported pixel mode {mode!r}")
    pixels = np.asarray(img)
    return (pixels[..., None] if pixels.ndim == 2 else pixels), 8


def _is_16bit_colour(img: Image.Image, path: Path, fmt: str, rawmodes: list[str]) -> bool:
    """Detect 16-bit colour files that Pillow reads as 8-bit RGB(A); refuse the layouts we cannot split."""
    wide = [rawmode.endswith((";16B", ";16L", ";16N")) for rawmode in rawmodes]
    if fmt == "TIFF":
        bits = img.tag_v2.get(258, (8,))  # BitsPerSample
        bits = bits if isinstance(bits, tuple) else (bits,)
        if all(b == 8 for b in bits):
            return False
        if not (all(b == 16 for b in bits) and wide and all(wide)):
            raise ImageReadError(path, f"unsupported TIFF layout ({bits} bits per sample, raw mode {rawmodes})")
        return True
    if any("LA;16" in rawmode for rawmode in rawmodes):
        raise ImageReadError(path, "16-bit gray+alpha PNG is not supported; save it as 16-bit RGBA or 8-bit")
    return bool(wide) and all(wide)


def _decode_16bit_colour(img: Image.Image, path: Path) -> np.ndarray:
    """Join the high bytes Pillow already decoded with the low bytes from a second decoding pass.

    The second pass swaps the byte order of the raw mode (``RGB;16B`` <-> ``RGB;16L``), so Pillow's
    unpacker keeps the other byte of each sample. Filtering, interlacing and compression are handled
    by Pillow's decoders both times.
    """
    high = np.asarray(img).astype(np.uint16)
    native_other = "L" if sys.byteorder == "big" else "B"  # ";16N" is native order
    with Image.open(path) as second:
        tiles = []
        for tile in second.tile:
            rawmode = _tile_rawmode(tile)
            swapped = rawmode[:-1] + {"B": "L", "L": "B", "N": native_other}[rawmode[-1]]
            args = swapped if isinstance(tile[3], str) else (swapped, *tile[3][1:])
            tiles.append(tile._replace(args=args) if hasattr(tile, "_replace") else (*tile[:3], args))
        second.tile = tiles
        second.load()
        low = np.asarray(second).astype(np.uint16)
    if low.shape != high.shape:
        raise ImageReadError(path, "cannot decode 16-bit colour data")
    return (high << 8) | low


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Transpose [H, W, C] pixels as EXIF orientation 1..8 asks (same result as ImageOps.exif_transpose)."""
    if orientation in (5, 6, 7, 8):
        pixels = pixels.swapaxes(0, 1)  # transpose; then flip as the remaining part of the rotation
        flips = {5: (), 6: (1,), 7: (0, 1), 8: (0,)}[orientation]
    else:
        flips = {1: (), 2: (1,), 3: (0, 1), 4: (0,)}[orientation]
    return np.flip(pixels, flips) if flips else pixels


# --------------------------------------------------------------------------------------------------
# Writing


def write_image(
    img: LoadedImage,
    rgb: torch.Tensor,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    format: str | None = None,
    bit_depth: int | None = None,
) -> Path:
    """Write restored ``rgb`` ([3, H, W] float, clipped to [0, 1]) the way ``img`` was stored.

    Gray in gives gray out (ITU-R 601 luminance, as Pillow's "L" conversion), ``img.alpha`` is
    re-attached as it is, the bit depth is kept where the format allows it (JPEG, WebP and BMP are
    8-bit; asking for 16 there is a ``ValueError``), and the ICC profile (when its colour space matches
    the output) and EXIF are kept except in BMP, and EXIF also not in 16-bit TIFF. JPEG is written at
    quality 95 without chroma subsampling, WebP at quality 95, 8-bit TIFF uncompressed, 16-bit TIFF
    deflate-compressed. A JPEG output for an image with alpha is a ``ValueError``.
    The format is ``format``, else the one named by the suffix of ``path``, else ``img.format``.

    The file is written to a temporary file beside ``path``, flushed to disk, then renamed over
    ``path``: on any failure ``path`` is untouched and no temporary file is left. Missing parent
    folders are created. Raises ``FileExistsError`` if ``path`` exists (the input image included)
    and ``overwrite`` is false, and ``ValueError`` for a tensor or format that cannot be written.
    Returns ``path``.
    """
    dest = Path(path)
    fmt = (format or IMAGE_SUFFIXES.get(dest.suffix.lower()) or img.format).upper()
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in _FORMATS:
        raise InvalidValueError(f"{dest}: cannot write format {fmt!r} (supported: {', '.join(_FORMATS)})")
    depth = bit_depth or img.bit_depth
    if depth not in (8, 16):
        raise InvalidValueError(f"{dest}: bit_depth must be 8 or 16, not {depth}")
    if depth == 16 and fmt not in ("PNG", "TIFF"):
        if bit_depth == 16:
            raise InvalidValueError(f"{dest}: {fmt} cannot store 16-bit images; write .png or .tiff instead")
        depth = 8
    if img.alpha is not None and fmt == "JPEG":
        raise InvalidValueError(f"{dest}: JPEG cannot store the alpha channel of {img.path.name}; write .png, .webp or .tiff")
    pixels = _to_pixels(img, rgb, depth)

    if not overwrite and dest.exists():
        if _same_file(dest, img.path):
            raise FileExistsError(f"{dest}: is the input image; refusing to overwrite it (pass --overwrite)")
        raise FileExistsError(f"{dest}: already exists (pass --overwrite to replace it)")
    atomic_write(dest, lambda f: _encode(f, pixels, fmt, depth, img.icc_profile, img.exif), replace=overwrite)
    return dest


def _to_pixels(img: LoadedImage, rgb: torch.Tensor, depth: int) -> np.ndarray:
    """Quantize the restored tensor (plus the original alpha) to [H, W, C] uint8/uint16."""
    x = rgb.detach().to(device="cpu", dtype=torch.float32)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor of shape [3, H, W], got {list(x.shape)}")
    x = torch.nan_to_num(x, nan=0.0).clamp(0.0, 1.0)
    if img.is_gray:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
    if img.alpha is not None:
        alpha = img.alpha.detach().to(device="cpu", dtype=torch.float32).reshape(-1, *img.alpha.shape[-2:])
        if alpha.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"restored image is {x.shape[-1]}×{x.shape[-2]} but its alpha channel is "
                f"{alpha.shape[-1]}×{alpha.shape[-2]}"
            )
        x = torch.cat([x, alpha.clamp(0.0, 1.0)])
    scale = float(2**depth - 1)
    values = (x * scale).round_().to(torch.int32).permute(1, 2, 0).contiguous().numpy()
    return values.astype(np.uint16 if depth == 16 else np.uint8)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def save_png(image: Image.Image, dest: Path, *, overwrite: bool = False) -> Path:
    """Write a PIL image as PNG atomically (side files such as ``--explain`` maps); never replaces an
    existing file unless ``overwrite``."""
    dest = Path(dest)
    if not overwrite and dest.exists():
        raise FileExistsError(f"{dest}: already exists (pass --overwrite to replace it)")
    atomic_write(dest, lambda f: image.save(f, format="PNG"), replace=overwrite)
    return dest


def _encode(f: BinaryIO, pixels: np.ndarray, fmt: str, depth: int, icc: bytes | None, exif: bytes | None) -> None:
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


def iter_image_paths(inputs: list[Path]) -> list[Path]:
    """Expand the command-line inputs into the list of image files to process.

    A folder gives its image files (known suffixes, any case; not recursive; hidden files skipped),
    sorted by name. A file is kept as given whatever its suffix, so that a wrong file gets a clear
    read error later. Duplicates are dropped. Raises ``FileNotFoundError`` for a missing input.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for entry in map(Path, inputs):
        if entry.is_dir():
            candidates = sorted(
                p for p in entry.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        elif entry.exists():
            candidates = [entry]
        else:
            raise MissingPathError(f"{entry}: no such file or directory")
        for candidate in candidates:
            key = candidate.resolve()
            if key not in seen:
                seen.add(key)
                found.append(candidate)
    return found


def output_path_for(input_path: Path, out: Path | None, *, suffix: str = "_restored", is_batch: bool) -> Path:
    """Where the restored version of ``input_path`` goes.

    No ``out``: beside the input, as ``<stem><suffix><ext>``. ``out`` an existing folder, or any
    ``out`` when several inputs are processed (``is_batch``): ``out/<input name>``. Otherwise ``out``
    is the output file itself.
    """
    input_path = Path(input_path)
    if out is None:
        return input_path.with_name(f"{input_path.stem}{suffix}{input_path.suffix}")
    out = Path(out)
    if is_batch or out.is_dir():
        return out / input_path.name
    return out

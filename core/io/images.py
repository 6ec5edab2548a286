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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .encode import encode as _encode
from .files import atomic_write, check_writable, sweep_temporaries
from .paths import IMAGE_SUFFIXES, iter_image_paths, output_path_for  # noqa: F401  (public here too)
from ..errors import InvalidValueError, UserError
from ..memory import IMAGE_BYTES_PER_PIXEL

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

_FORMATS = ("BMP", "JPEG", "PNG", "TIFF", "WEBP")
_FORMAT_ALIASES = {"MPO": "JPEG"}  # phone cameras write JPEGs with extra frames; Pillow calls them MPO
_GRAY16_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La"}) | _GRAY16_MODES
_ORIENTATION_TAG = 0x0112
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


#: The largest image `air restore` accepts by default (``--max-pixels``): about 3 GB of whole-image buffers
#: (``core.memory``).
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
                need_gb = width * height * IMAGE_BYTES_PER_PIXEL / 1e9
                raise ImageReadError(
                    path,
                    f"image too large ({width}×{height} pixels, limit {max_pixels:,}): restoring it needs "
                    f"more than {need_gb:.1f} GB of memory; if you have that, raise the limit with --max-pixels",
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

    rgb, alpha = _to_tensors(_apply_orientation(pixels, orientation), bit_depth)
    del pixels
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


#: Rows converted at a time between pixels and tensors: a whole-image float temporary costs 12 bytes per
#: pixel, so converting in strips keeps the peak of reading and writing at the buffers themselves
#: (``core.memory``).
STRIP_ROWS = 256


def _to_tensors(pixels: np.ndarray, bit_depth: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[H, W, C] uint8/uint16 pixels (C = L, LA, RGB or RGBA) → rgb [3, H, W] and alpha [1, H, W] (or None),
    float32 in [0, 1], strip by strip (``STRIP_ROWS``); gray is repeated into the three channels."""
    h, w, channels = pixels.shape
    rgb = torch.empty(3, h, w)
    alpha = torch.empty(1, h, w) if channels in (2, 4) else None
    colour = slice(0, 1 if channels <= 2 else 3)
    for r0 in range(0, h, STRIP_ROWS):
        strip = pixels[r0 : r0 + STRIP_ROWS].astype(np.float32, order="C")
        strip /= float(2**bit_depth - 1)
        t = torch.from_numpy(strip).permute(2, 0, 1)  # [C, rows, W]
        rgb[:, r0 : r0 + STRIP_ROWS] = t[colour]  # a gray channel broadcasts to three
        if alpha is not None:
            alpha[:, r0 : r0 + STRIP_ROWS] = t[channels - 1 :]
    return rgb, alpha


def image_size(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(width, height) of an image file as ``read_image`` will return it (EXIF rotation applied), from its
    header alone; None where the header cannot be read (``read_image`` then says why)."""
    try:
        with _pil_pixel_limit_disabled(), Image.open(path) as img:
            width, height = img.size
            _, orientation = _exif_and_orientation(img)
    except Exception:  # any unreadable file: read_image reports it properly
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


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
    """Quantize the restored tensor (plus the original alpha) to [H, W, C] uint8/uint16, strip by strip
    (``STRIP_ROWS``)."""
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"expected an RGB tensor of shape [3, H, W], got {list(rgb.shape)}")
    _, h, w = rgb.shape
    alpha = None
    if img.alpha is not None:
        alpha = img.alpha.detach().reshape(-1, *img.alpha.shape[-2:])
        if alpha.shape[-2:] != rgb.shape[-2:]:
            raise ValueError(
                f"restored image is {w}×{h} but its alpha channel is {alpha.shape[-1]}×{alpha.shape[-2]}"
            )
    channels = (1 if img.is_gray else 3) + (alpha.shape[0] if alpha is not None else 0)
    out = np.empty((h, w, channels), dtype=np.uint16 if depth == 16 else np.uint8)
    scale = float(2**depth - 1)
    for r0 in range(0, h, STRIP_ROWS):
        rows = slice(r0, r0 + STRIP_ROWS)
        x = rgb[:, rows].detach().to(device="cpu", dtype=torch.float32)
        x = torch.nan_to_num(x, nan=0.0).clamp(0.0, 1.0)
        if img.is_gray:
            x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
        if alpha is not None:
            x = torch.cat([x, alpha[:, rows].to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0)])
        out[rows] = (x * scale).round_().to(torch.int32).permute(1, 2, 0).numpy()
    return out


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

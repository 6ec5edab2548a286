"""Tests for the image I/O edge (air_restore.core.io.images), on real files written in tmp_path."""

from __future__ import annotations

import os
import pickle
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageOps

from air_restore.core.io.images import (
    ImageReadError,
    iter_image_paths,
    output_path_for,
    read_image,
    write_image,
)

RNG = np.random.default_rng(1234)


def _rgb8(h: int = 24, w: int = 32) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _smooth_rgb8(h: int = 48, w: int = 64) -> np.ndarray:
    """A gradient: lossy codecs keep it close, unlike noise."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + y) * 255 // (w + h - 2)], -1).astype(np.uint8)


def _pil_array(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _write_png16(path: Path, pixels: np.ndarray) -> None:
    """An independent 16-bit PNG encoder cycling the five row filters (None, Sub, Up, Average, Paeth)."""
    h, w, c = pixels.shape
    raw = pixels.astype(">u2").view(np.uint8).reshape(h, w * c * 2).astype(np.int32)
    bpp = 2 * c
    lines = []
    for y in range(h):
        cur = raw[y]
        up = raw[y - 1] if y else np.zeros_like(cur)
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        kind = y % 5
        if kind == 0:
            pred = np.zeros_like(cur)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = up
        elif kind == 3:
            pred = (left + up) // 2
        else:
            p = left + up - up_left
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        lines.append(bytes([kind]) + ((cur - pred) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(lines)))
        + chunk(b"IEND", b"")
    )


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ----------------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("TIFF", ".tif"), ("BMP", ".bmp")])
def test_lossless_rgb8_round_trip_is_exact(tmp_path: Path, fmt: str, suffix: str) -> None:
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    pixels = _rgb8()
    Image.fromarray(pixels).save(src, format=fmt)

    img = read_image(src)
    assert (img.format, img.mode, img.bit_depth, img.is_gray, img.alpha) == (fmt, "RGB", 8, False, None)
    assert img.rgb.dtype == torch.float32 and img.rgb.shape == (3, 24, 32)
    assert torch.equal(img.rgb, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)

    assert write_image(img, img.rgb, dst) == dst
    with Image.open(dst) as out:
        assert (out.format, out.mode) == (fmt, "RGB")
        np.testing.assert_array_equal(np.asarray(out), pixels)


@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("WEBP", ".webp")])
def test_lossy_rgb8_round_trip_is_close(tmp_path: Path, fmt: str, suffix: str) -> None:
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    pixels = _smooth_rgb8()
    Image.fromarray(pixels).save(src, format=fmt, quality=95)

    img = read_image(src)
    assert (img.format, img.mode, img.bit_depth) == (fmt, "RGB", 8)
    write_image(img, img.rgb, dst)
    with Image.open(dst) as out:
        assert out.format == fmt
        diff = np.abs(np.asarray(out).astype(int) - pixels.astype(int))
    assert diff.mean() < 3


def test_jpeg_output_is_quality_95_without_chroma_subsampling(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(_smooth_rgb8()).save(src)
    write_image(read_image(src), read_image(src).rgb, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.layer[0][1:3] == (1, 1)  # luma sampled like chroma: 4:4:4


@pytest.mark.parametrize("fmt, suffix", [("PNG", ".png"), ("TIFF", ".tif"), ("BMP", ".bmp"), ("JPEG", ".jpg")])
def test_gray8_stays_gray(tmp_path: Path, fmt: str, suffix: str) -> None:
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    gray = _smooth_rgb8()[..., 0]
    Image.fromarray(gray).save(src, format=fmt)

    img = read_image(src)
    assert img.is_gray and img.mode == "L" and img.bit_depth == 8
    assert torch.equal(img.rgb[0], img.rgb[1]) and torch.equal(img.rgb[0], img.rgb[2])
    write_image(img, img.rgb, dst)
    with Image.open(dst) as out:
        assert out.mode == "L"
        written = np.asarray(out)
    if fmt == "JPEG":
        assert np.abs(written.astype(int) - gray.astype(int)).max() <= 2
    else:
        np.testing.assert_array_equal(written, gray)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_gray16_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    gray = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    Image.fromarray(gray).save(src)

    img = read_image(src)
    assert img.is_gray and img.bit_depth == 16 and img.mode.startswith("I")
    assert torch.equal(img.rgb[1], torch.from_numpy(gray.astype(np.float32)) / 65535)
    write_image(img, img.rgb, dst)
    with Image.open(dst) as out:
        assert out.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(out), gray)
    assert read_image(dst).bit_depth == 16


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb16_png_keeps_all_16_bits(tmp_path: Path, channels: int) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    pixels = RNG.integers(0, 65536, (23, 17, channels), dtype=np.uint16)
    _write_png16(src, pixels)

    img = read_image(src)
    assert img.bit_depth == 16 and img.mode == ("RGB", "RGBA")[channels - 3] and not img.is_gray
    expected = torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1) / 65535
    assert torch.equal(img.rgb, expected[:3])
    if channels == 4:
        assert torch.equal(img.alpha, expected[3:])

    write_image(img, img.rgb, dst)
    with Image.open(dst) as out:  # a valid PNG: Pillow reads the high bytes
        np.testing.assert_array_equal(np.asarray(out), (pixels >> 8).astype(np.uint8))
    reread = read_image(dst)
    assert reread.bit_depth == 16 and torch.equal(reread.rgb, img.rgb)
    if channels == 4:
        assert torch.equal(reread.alpha, img.alpha)


@pytest.mark.parametrize("channels", [3, 4])
def test_rgb16_tiff_round_trip_is_exact(tmp_path: Path, channels: int) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.tiff"
    pixels = RNG.integers(0, 65536, (19, 21, channels), dtype=np.uint16)
    _write_png16(src, pixels)
    img = read_image(src)

    write_image(img, img.rgb, dst)
    tiff = read_image(dst)
    assert (tiff.format, tiff.bit_depth) == ("TIFF", 16)
    assert torch.equal(tiff.rgb, img.rgb)
    if channels == 4:
        assert torch.equal(tiff.alpha, img.alpha)


def test_rgb16_tiff_interoperates_with_tifffile(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    pixels = RNG.integers(0, 65536, (13, 11, 3), dtype=np.uint16)
    for name, kwargs in {"deflate.tif": {"compression": "zlib"}, "be.tif": {"byteorder": ">"}}.items():
        tifffile.imwrite(tmp_path / name, pixels, photometric="rgb", **kwargs)
        img = read_image(tmp_path / name)
        assert img.bit_depth == 16
        assert torch.equal(img.rgb, torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1) / 65535)
    write_image(img, img.rgb, tmp_path / "ours.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "ours.tif"), pixels)

    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(pixels, -1, 0), photometric="rgb", planarconfig="separate")
    with pytest.raises(ImageReadError, match="planar.tif: unsupported TIFF layout"):
        read_image(tmp_path / "planar.tif")


def test_gray_alpha16_png_is_refused_clearly(tmp_path: Path) -> None:
    src = tmp_path / "la16.png"
    pixels = RNG.integers(0, 65536, (5, 6, 2), dtype=np.uint16)
    _write_png16(src, pixels)
    with pytest.raises(ImageReadError, match=r"la16.png: 16-bit gray\+alpha PNG is not supported"):
        read_image(src)


def test_16bit_template_to_jpeg_writes_8bit_and_explicit_16_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(RNG.integers(0, 65536, (8, 8), dtype=np.uint16)).save(src)
    img = read_image(src)
    write_image(img, img.rgb, tmp_path / "out.jpg")
    assert Image.open(tmp_path / "out.jpg").mode == "L"
    with pytest.raises(ValueError, match="JPEG cannot store 16-bit"):
        write_image(img, img.rgb, tmp_path / "out2.jpg", bit_depth=16)
    write_image(img, img.rgb, tmp_path / "eight.png", bit_depth=8)
    assert Image.open(tmp_path / "eight.png").mode == "L"


@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp"])
def test_rgba_alpha_passes_through_byte_exact(tmp_path: Path, suffix: str) -> None:
    src, dst = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    pixels = np.dstack([_rgb8(), RNG.integers(0, 256, (24, 32), dtype=np.uint8)])
    options = {"lossless": True} if suffix == ".webp" else {}
    Image.fromarray(pixels).save(src, **options)
    stored_alpha = _pil_array(src)[..., 3]

    img = read_image(src)
    assert img.mode == "RGBA" and img.alpha.shape == (1, 24, 32)
    write_image(img, 1.0 - img.rgb, dst)  # restoration changes the colour, never the alpha
    written = _pil_array(dst)
    np.testing.assert_array_equal(written[..., 3], stored_alpha)
    if suffix != ".webp":
        np.testing.assert_array_equal(written[..., :3], 255 - pixels[..., :3])


def test_gray_alpha8_stays_gray_alpha(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    pixels = RNG.integers(0, 256, (10, 12, 2), dtype=np.uint8)
    Image.fromarray(pixels).save(src)
    img = read_image(src)
    assert img.is_gray and img.mode == "LA"
    write_image(img, img.rgb, dst)
    with Image.open(dst) as out:
        assert out.mode == "LA"
        np.testing.assert_array_equal(np.asarray(out), pixels)


def test_alpha_to_jpeg_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(np.dstack([_rgb8(), _rgb8()[..., 0]])).save(src)
    img = read_image(src)
    with pytest.raises(ValueError, match="JPEG cannot store the alpha"):
        write_image(img, img.rgb, tmp_path / "out.jpg")
    assert not (tmp_path / "out.jpg").exists()


def test_palette_reads_as_rgb_and_transparency_as_alpha(tmp_path: Path) -> None:
    pal = Image.fromarray(_smooth_rgb8()).quantize(16)
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    assert img.mode == "P" and img.alpha is None and not img.is_gray
    expected = np.array(pal.convert("RGB"))
    assert torch.equal(img.rgb, torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    write_image(img, img.rgb, tmp_path / "out.png")
    assert Image.open(tmp_path / "out.png").mode == "RGB"

    pal.save(tmp_path / "pt.png", transparency=0)
    img = read_image(tmp_path / "pt.png")
    index = np.asarray(pal)
    assert torch.equal(img.alpha[0] == 0, torch.from_numpy(index == 0))


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_reads_as_rgb(tmp_path: Path, suffix: str) -> None:
    cmyk = Image.fromarray(_smooth_rgb8()).convert("CMYK")
    cmyk.save(tmp_path / f"c{suffix}")
    with Image.open(tmp_path / f"c{suffix}") as stored:
        expected = np.array(stored.convert("RGB"))
    img = read_image(tmp_path / f"c{suffix}")
    assert img.mode == "CMYK" and img.rgb.shape == (3, 48, 64)
    assert torch.equal(img.rgb, torch.from_numpy(expected).permute(2, 0, 1).float() / 255)
    write_image(img, img.rgb, tmp_path / f"out{suffix}")
    assert Image.open(tmp_path / f"out{suffix}").mode == "RGB"


def test_exif_orientation_6_is_applied_and_reset(tmp_path: Path) -> None:
    src = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "TestCam"  # Make
    Image.fromarray(_smooth_rgb8(20, 40)).save(src, exif=exif.tobytes())

    img = read_image(src)
    assert img.rgb.shape == (3, 40, 20)  # 40 wide × 20 high on disk, displayed 20 × 40
    kept = Image.Exif()
    kept.load(img.exif)
    assert kept[0x0112] == 1 and kept[0x010F] == "TestCam"

    write_image(img, img.rgb, tmp_path / "out.jpg")
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.size == (20, 40)
        assert out.getexif()[0x0112] == 1 and out.getexif()[0x010F] == "TestCam"


@pytest.mark.parametrize("suffix", [".tif", ".png", ".webp"])
def test_exif_is_kept_in_other_formats(tmp_path: Path, suffix: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[256] = 999  # a bogus ImageWidth, as some cameras write; must not end up in a TIFF's layout
    exif.get_ifd(0x8769)[0x9003] = "2024:01:02 03:04:05"  # DateTimeOriginal, in the Exif sub-IFD
    Image.fromarray(_smooth_rgb8()).save(tmp_path / "in.jpg", exif=exif.tobytes())
    img = read_image(tmp_path / "in.jpg")
    write_image(img, img.rgb, tmp_path / f"out{suffix}")
    with Image.open(tmp_path / f"out{suffix}") as out:
        out.load()
        assert out.size == (64, 48)
        kept = out.getexif()
        assert kept[0x010F] == "TestCam" and kept.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"
    assert read_image(tmp_path / f"out{suffix}").rgb.shape == (3, 48, 64)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    src = tmp_path / "o.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_rgb8(5, 7)).save(src, exif=exif.tobytes())
    with Image.open(src) as stored:
        expected = np.asarray(ImageOps.exif_transpose(stored))
    img = read_image(src)
    assert torch.equal(img.rgb, torch.from_numpy(expected.copy()).permute(2, 0, 1).float() / 255)


def test_icc_profile_is_kept_when_the_colour_space_matches(tmp_path: Path) -> None:
    icc = _srgb_icc()
    Image.fromarray(_rgb8()).save(tmp_path / "in.png", icc_profile=icc)
    img = read_image(tmp_path / "in.png")
    assert img.icc_profile == icc
    for name in ("out.png", "out.jpg", "out.tif", "out.webp"):
        write_image(img, img.rgb, tmp_path / name)
        assert Image.open(tmp_path / name).info.get("icc_profile") == icc, name

    Image.fromarray(_rgb8()[..., 0]).save(tmp_path / "gray.png", icc_profile=icc)
    gray = read_image(tmp_path / "gray.png")
    write_image(gray, gray.rgb, tmp_path / "gray_out.png")  # an RGB profile on gray pixels would be wrong
    assert Image.open(tmp_path / "gray_out.png").info.get("icc_profile") is None


def test_icc_and_exif_kept_for_16bit_png(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    _write_png16(tmp_path / "in.png", pixels)
    img = read_image(tmp_path / "in.png")
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    img.icc_profile, img.exif = _srgb_icc(), exif.tobytes()
    write_image(img, img.rgb, tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as out:
        out.load()
        assert out.info["icc_profile"] == img.icc_profile and out.getexif()[0x010F] == "TestCam"


# ----------------------------------------------------------------------------------------------------
# Bad input


def _assert_one_line(exc: pytest.ExceptionInfo[BaseException], name: str, reason: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(name) and reason in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "nope.png")
    _assert_one_line(exc, str(tmp_path / "nope.png"), ": no such file")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "dir.png")
    _assert_one_line(exc, str(tmp_path / "dir.png"), "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "x.png")
    _assert_one_line(exc, str(tmp_path / "x.png"), ": file is empty")


@pytest.mark.parametrize("content", [b"hello, this is a text file\n" * 10, bytes(range(256)) * 8])
def test_not_an_image(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "photo.png").write_bytes(content)
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "photo.png")
    _assert_one_line(exc, str(tmp_path / "photo.png"), "not an image file (cannot identify format)")


@pytest.mark.parametrize(
    "fmt, suffix", [("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("WEBP", ".webp"), ("BMP", ".bmp")]
)
def test_truncated_file(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(_rgb8(64, 64)).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    _assert_one_line(exc, str(path), "truncated or corrupt image data")


def test_truncated_16bit_png(tmp_path: Path) -> None:
    path = tmp_path / "cut16.png"
    _write_png16(path, RNG.integers(0, 65536, (40, 40, 3), dtype=np.uint16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut16.png: truncated or corrupt image data"):
        read_image(path)


def test_unsupported_format(tmp_path: Path) -> None:
    Image.fromarray(_rgb8()).save(tmp_path / "anim.gif")
    with pytest.raises(ImageReadError, match=r"anim.gif: unsupported format GIF \(supported: BMP"):
        read_image(tmp_path / "anim.gif")


def test_too_large(tmp_path: Path) -> None:
    Image.fromarray(_rgb8(20, 30)).save(tmp_path / "big.png")
    limit_before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "big.png", max_pixels=599)
    _assert_one_line(exc, str(tmp_path / "big.png"), "image too large (30×20 pixels, limit 599)")
    assert "--max-pixels" in str(exc.value)
    assert read_image(tmp_path / "big.png", max_pixels=600).rgb.shape == (3, 20, 30)
    assert Image.MAX_IMAGE_PIXELS == limit_before


def test_read_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(ImageReadError(Path("a.png"), "file is empty")))
    assert str(err) == "a.png: file is empty" and err.reason == "file is empty"


# ----------------------------------------------------------------------------------------------------
# Atomic writing


@pytest.fixture()
def loaded(tmp_path: Path):
    src = tmp_path / "in.png"
    Image.fromarray(_rgb8()).save(src)
    return read_image(src)


def test_existing_destination_is_not_overwritten(tmp_path: Path, loaded) -> None:
    dst = tmp_path / "out.png"
    dst.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="already exists.*--overwrite"):
        write_image(loaded, loaded.rgb, dst)
    assert dst.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


def test_input_is_never_overwritten_without_overwrite(tmp_path: Path, loaded) -> None:
    before = loaded.path.read_bytes()
    with pytest.raises(FileExistsError, match="is the input image.*--overwrite"):
        write_image(loaded, 1.0 - loaded.rgb, loaded.path)
    with pytest.raises(FileExistsError, match="is the input image"):
        write_image(loaded, 1.0 - loaded.rgb, tmp_path / "." / "in.png")
    assert loaded.path.read_bytes() == before


def test_overwrite_replaces(tmp_path: Path, loaded) -> None:
    dst = tmp_path / "out.png"
    dst.write_bytes(b"old")
    write_image(loaded, 1.0 - loaded.rgb, dst, overwrite=True)
    assert torch.allclose(read_image(dst).rgb, 1.0 - loaded.rgb, atol=0.5 / 255)
    write_image(loaded, 1.0 - loaded.rgb, loaded.path, overwrite=True)  # in place, when asked to
    assert torch.allclose(read_image(loaded.path).rgb, 1.0 - loaded.rgb, atol=0.5 / 255)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]


def test_written_file_gets_umask_permissions_not_private_temp_ones(tmp_path: Path, loaded) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    write_image(loaded, loaded.rgb, tmp_path / "out.png")
    assert stat.S_IMODE((tmp_path / "out.png").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("dest_exists", [False, True])
def test_failed_write_leaves_nothing_behind(tmp_path: Path, loaded, monkeypatch, dest_exists: bool) -> None:
    dst = tmp_path / "out.png"
    if dest_exists:
        dst.write_bytes(b"old")

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(loaded, loaded.rgb, dst, overwrite=True)
    expected = ["in.png", "out.png"] if dest_exists else ["in.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    if dest_exists:
        assert dst.read_bytes() == b"old"


def test_failed_16bit_write_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:
    _write_png16(tmp_path / "in.png", RNG.integers(0, 65536, (4, 4, 3), dtype=np.uint16))
    img = read_image(tmp_path / "in.png")

    def broken_fsync(fd: int) -> None:
        raise OSError("io error")

    monkeypatch.setattr("air_restore.core.io.images.os.fsync", broken_fsync)
    with pytest.raises(OSError, match="io error"):
        write_image(img, img.rgb, tmp_path / "out.png")
    assert [p.name for p in tmp_path.iterdir()] == ["in.png"]


def test_write_format_from_suffix_and_new_folder(tmp_path: Path, loaded) -> None:
    dst = tmp_path / "new" / "deeper" / "out.TIF"
    write_image(loaded, loaded.rgb, dst)
    assert Image.open(dst).format == "TIFF"
    write_image(loaded, loaded.rgb, tmp_path / "noext", format="bmp")
    assert Image.open(tmp_path / "noext").format == "BMP"
    write_image(loaded, loaded.rgb, tmp_path / "odd.out")  # unknown suffix: the input's format
    assert Image.open(tmp_path / "odd.out").format == "PNG"


def test_write_checks_tensor_shapes(tmp_path: Path, loaded) -> None:
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        write_image(loaded, loaded.rgb[None], tmp_path / "a.png")
    src = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([_rgb8(), _rgb8()[..., 0]])).save(src)
    rgba = read_image(src)
    with pytest.raises(ValueError, match="alpha channel"):
        write_image(rgba, torch.zeros(3, 48, 64), tmp_path / "b.png")


def test_write_clips_and_gray_uses_luminance(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "g.png")
    gray = read_image(tmp_path / "g.png")
    colour = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 2, 2).clone()
    colour[:, 0, 0] = torch.tensor([2.0, float("nan"), -1.0])
    write_image(gray, colour, tmp_path / "out.png")
    written = _pil_array(tmp_path / "out.png")
    assert written[0, 0] == round(0.299 * 255) and written[1, 1] == round(0.299 * 255)


# ----------------------------------------------------------------------------------------------------
# Paths


def test_iter_image_paths(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.JPG", "a.png", "c.tiff", "notes.txt", ".hidden.png", "d.webp", "e.Bmp"):
        (folder / name).write_bytes(b"x")
    (folder / "sub.png").mkdir()
    odd = tmp_path / "scan.data"
    odd.write_bytes(b"x")

    found = iter_image_paths([folder, odd, folder / "a.png"])
    assert [p.name for p in found] == ["a.png", "b.JPG", "c.tiff", "d.webp", "e.Bmp", "scan.data"]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        iter_image_paths([folder, tmp_path / "missing.png"])


def test_output_path_for(tmp_path: Path) -> None:
    src = tmp_path / "in" / "photo.jpg"
    assert output_path_for(src, None, is_batch=False) == tmp_path / "in" / "photo_restored.jpg"
    assert output_path_for(src, None, suffix="_x", is_batch=True) == tmp_path / "in" / "photo_x.jpg"
    assert output_path_for(src, tmp_path, is_batch=False) == tmp_path / "photo.jpg"
    assert output_path_for(src, tmp_path / "new", is_batch=True) == tmp_path / "new" / "photo.jpg"
    assert output_path_for(src, tmp_path / "out.png", is_batch=False) == tmp_path / "out.png"

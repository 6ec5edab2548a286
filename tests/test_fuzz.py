"""A bad-input suite that grows (#13): hypothesis throws random and damaged files at the image reader
and odd strings at the CLI's names and weights. The property is always the same: a clear error (our
exception type, one line, exit code 2 or 1), never a crash, never a file lost. Fixed seed
(``derandomize``) and a bounded number of examples here; ``-m slow`` runs many more."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.main import app
from air_restore.core.io.images import IMAGE_SUFFIXES, ImageReadError, read_image

FAST = settings(max_examples=60, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
MANY = settings(FAST, max_examples=600)


def _valid_files() -> dict[str, bytes]:
    """One small valid file per format and pixel layout the reader supports."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    out = {}
    for name, img, fmt in (
        ("png", rgb, "PNG"), ("gray.png", rgb.convert("L"), "PNG"), ("rgba.png", rgb.convert("RGBA"), "PNG"),
        ("p.png", rgb.convert("P"), "PNG"), ("16.png", Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "PNG"),
        ("jpg", rgb, "JPEG"), ("cmyk.jpg", rgb.convert("CMYK"), "JPEG"), ("tif", rgb, "TIFF"),
        ("webp", rgb, "WEBP"), ("bmp", rgb, "BMP"),
    ):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out[name] = buf.getvalue()
    return out


VALID = _valid_files()


def _reads_or_refuses(path: Path) -> None:
    """The reader's whole contract: a usable image, or ImageReadError with a one-line message."""
    try:
        img = read_image(path)
    except ImageReadError as e:
        assert "\n" not in str(e) and str(e).startswith(str(path))
        return
    assert img.rgb.ndim == 3 and img.rgb.shape[0] == 3 and img.rgb.numel() > 0
    assert bool(img.rgb.isfinite().all()) and float(img.rgb.min()) >= 0 and float(img.rgb.max()) <= 1


def _check_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    p = tmp_path / f"random{suffix}"
    p.write_bytes(data)
    _reads_or_refuses(p)


def _check_damaged(tmp_path: Path, kind: str, cut: float, flips: list[tuple[float, int]]) -> None:
    data = bytearray(VALID[kind])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = bytes(data[: max(0, int(cut * len(data)))])
    p = tmp_path / f"damaged.{kind.rsplit('.', 1)[-1]}"
    p.write_bytes(data)
    _reads_or_refuses(p)


suffixes = st.sampled_from(sorted(IMAGE_SUFFIXES))
damage = dict(kind=st.sampled_from(sorted(VALID)), cut=st.floats(0, 1),
              flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6))


@FAST
@given(data=st.binary(max_size=2048), suffix=suffixes)
def test_random_bytes_are_refused_clearly(tmp_path, data, suffix):
    _check_random_bytes(tmp_path, data, suffix)


@FAST
@given(**damage)
def test_truncated_or_corrupted_files_are_read_or_refused_clearly(tmp_path, kind, cut, flips):
    _check_damaged(tmp_path, kind, cut, flips)


@pytest.mark.slow
@MANY
@given(data=st.binary(max_size=4096), suffix=suffixes)
def test_random_bytes_many(tmp_path, data, suffix):
    _check_random_bytes(tmp_path, data, suffix)


@pytest.mark.slow
@MANY
@given(**damage)
def test_damaged_files_many(tmp_path, kind, cut, flips):
    _check_damaged(tmp_path, kind, cut, flips)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# Strings a user might type, or paste by mistake: paths, dots, globs, unicode, control characters.
names = st.one_of(st.text(max_size=24), st.sampled_from(["..", ".", "/", "/tmp", "../x", "~", "noise/..", "*",
                                                          "rain\n", "NOISE", "a" * 300, "snow;rm -rf"]))


@settings(FAST, max_examples=40)
@given(name=names)
def test_air_remove_takes_names_never_paths(tmp_path, name):
    """Whatever is typed, `air remove` deletes nothing but a store entry by that exact name (there is none
    here), and answers in one line with exit 2."""
    (tmp_path / "keep").mkdir(exist_ok=True)
    (tmp_path / "keep" / "photo.png").write_bytes(VALID["png"])
    before = _snapshot(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        r = CliRunner().invoke(app, ["remove", name])
    finally:
        os.chdir(cwd)
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert _snapshot(tmp_path) == before


weights = st.one_of(st.text(max_size=20), st.builds(lambda n, w: f"{n}={w}", st.sampled_from(
    ["noise", "rain", "haze", "snow", ""]), st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str),
                                                      st.text(max_size=6))))


@settings(FAST, max_examples=40)
@given(spec=weights)
def test_adapter_weights_are_valid_or_refused(tmp_path, spec):
    """`--adapters SPEC`: either a restore with weights in [0, 1.5] (exit 0), or one line, exit 2 before any
    work; never a traceback, never an output written on refusal."""
    src = tmp_path / "in.png"
    src.write_bytes(VALID["png"])
    out = tmp_path / "out.png"
    out.unlink(missing_ok=True)
    r = CliRunner().invoke(app, ["restore", str(src), "-o", str(out), "--adapters", spec, "--device", "cpu"])
    assert r.exit_code in (0, 2), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert out.exists() == (r.exit_code == 0)

"""The public Python API (README): `load_pipeline()` gives exactly what `air restore` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.main import app
from air_restore.registry import load_pipeline

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hazy_chelsea.png"


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(device="cpu")


def test_a_file_through_the_pipeline_equals_air_restore(pipe, tmp_path):
    ours = pipe(EXAMPLE, tmp_path / "api.png")
    r = CliRunner().invoke(app, ["restore", str(EXAMPLE), "-o", str(tmp_path / "cli.png")])
    assert r.exit_code == 0, r.output
    a, b = np.asarray(Image.open(ours)), np.asarray(Image.open(tmp_path / "cli.png"))
    assert ours == tmp_path / "api.png" and np.array_equal(a, b)
    with pytest.raises(FileExistsError, match="--overwrite"):
        pipe(EXAMPLE, tmp_path / "api.png")
    assert pipe.adapters == ["noise", "blur", "haze", "rain", "lowlight"]


def test_arrays_come_back_in_their_own_dtype(pipe, tmp_path):
    rgb8 = np.asarray(Image.open(EXAMPLE).convert("RGB"))[:96, :128]
    out8 = pipe.restore(rgb8)
    assert out8.dtype == np.uint8 and out8.shape == rgb8.shape
    assert np.abs(out8.astype(int) - rgb8).mean() > 1  # it did restore something (the photo is hazy)
    out16 = pipe.restore(rgb8.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16 and np.abs(out16 / 257 - out8).max() <= 1.0
    outf = pipe.restore(rgb8.astype(np.float32) / 255)
    assert outf.dtype == np.float32 and np.abs(outf * 255 - out8).max() <= 0.51
    fixed = pipe.restore(rgb8, adapters={"haze": 1.0})
    assert not np.array_equal(fixed, pipe.restore(rgb8, adapters={}))
    with pytest.raises(ValueError, match="H×W×3"):
        pipe.restore(rgb8[:, :, 0])
    with pytest.raises(KeyError, match="no active adapter named 'snow'"):
        pipe.restore(rgb8, adapters={"snow": 1.0})

"""Memory bounded by design (issue 13): the peak of `air restore` is predicted from the image and tile sizes
before any work, a tile that does not fit is made smaller, and an image that cannot fit is refused before
its pixels are decoded, with a message naming the real option."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.main import app
from air_restore.core import memory
from air_restore.core.defaults import OVERLAP, TILE, TILE_HALF, default_tile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import memory as memory_bench  # noqa: E402  (benchmarks/memory.py)

runner = CliRunner()
linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc")


def test_tiles_bound_the_network_part_whatever_the_image_size():
    bound = memory.TILE_BYTES_PER_PIXEL * (512 + 7) ** 2  # a tile is at most --tile + align − 1 on a side
    for h, w in ((768, 1024), (3000, 4000), (6000, 8000), (12000, 16000)):
        need = memory.predict(h, w, tile=512, overlap=OVERLAP)
        assert need.tiles <= bound and max(need.tile_shape) <= 519, (h, w, need)
        assert need.image == memory.IMAGE_BYTES_PER_PIXEL * h * w
    # Tiles shrink to share the image evenly: 1024 px at --tile 768 are two tiles of 576, not 768.
    assert memory.tile_shape(768, 1024, 768, OVERLAP) == (768, 576)
    # A GPU holds the tile's activations in its own memory.
    assert memory.predict(6000, 8000, tile=512, overlap=OVERLAP, device="cuda").tiles == 0


def test_plan_shrinks_the_tile_to_fit_and_refuses_what_cannot():
    h, w = 6000, 8000
    at = {t: memory.predict(h, w, tile=t, overlap=OVERLAP).total for t in (768, 512, 256)}
    assert at[768] > at[512] > at[256]
    assert memory.plan(h, w, tile=768, overlap=OVERLAP, available=at[768] + 1).tile == 768
    fit = memory.plan(h, w, tile=768, overlap=OVERLAP, available=at[512] + 1)
    assert fit.tile == 512 and "--tile 512 instead of 768" in fit.note
    assert memory.plan(h, w, tile=768, overlap=OVERLAP, available=at[256] + 1).tile == 256
    with pytest.raises(memory.ImageTooLargeError, match=r"photo\.jpg: .*8000×6000.*--max-pixels"):
        memory.plan(h, w, tile=768, overlap=OVERLAP, available=at[256] - 1, name="photo.jpg")


def test_available_memory_is_read_from_the_system():
    avail = memory.available_bytes()
    if not Path("/proc/meminfo").exists():
        assert avail is None
        return
    total = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                     if ln.startswith("MemTotal:"))) * 1024
    rss = memory._own_rss()
    assert rss > 50e6  # this process, torch loaded
    assert rss < avail <= total + rss


@linux_only
def test_prediction_matches_the_measured_peak_of_air_restore(tmp_path):
    """`air restore` in a fresh process: its own VmHWM against core.memory.predict (benchmarks/memory.py)."""
    row = memory_bench.run_row(tmp_path, 1024, 768, 256)  # small tiles: the allocator's share varies least
    assert -10 <= row["error_pct"] <= 30, row  # on the safe side: the constants are a fit rounded up


def _big_png(path: Path, width: int, height: int) -> Path:
    Image.fromarray(np.full((height, width, 3), 90, np.uint8)).save(path)  # flat: a few kB on disk
    return path


def test_an_image_that_cannot_fit_is_refused_before_decoding(tmp_path, monkeypatch):
    src = _big_png(tmp_path / "wide.png", 12000, 9000)
    monkeypatch.setattr(memory, "available_bytes", lambda: 0.9e9)
    t = time.perf_counter()
    r = runner.invoke(app, ["restore", str(src), "--device", "cpu"])
    text = " ".join(r.output.split())
    assert r.exit_code == 1, text
    assert "wide.png: restoring this 12000×9000 image needs about" in text and "--max-pixels" in text
    assert "0.9 GB is available" in text
    assert not (tmp_path / "wide_restored.png").exists()
    assert time.perf_counter() - t < 20  # refused from the header: 108 MP were never decoded nor restored


def test_a_tile_that_does_not_fit_is_made_smaller_with_the_same_result(tmp_path, monkeypatch):
    src = tmp_path / "photo.png"
    from skimage import data

    Image.fromarray(data.astronaut()).resize((640, 480), Image.BICUBIC).save(src)
    at_256 = memory.predict(480, 640, tile=256, overlap=OVERLAP, again=True).total  # as the pipeline plans
    monkeypatch.setattr(memory, "available_bytes", lambda: at_256 + 1e6)
    r = runner.invoke(app, ["restore", str(src), "--device", "cpu", "-o", str(tmp_path / "auto.png")])
    text = " ".join(r.output.split())
    assert r.exit_code == 0, text
    import torch

    from air_restore.core.runtime import resolve_precision

    asked = default_tile(resolve_precision("auto", torch.device("cpu")) != torch.float32)  # 1024 in bf16
    assert f"photo.png: using --tile 256 instead of {asked}" in text
    monkeypatch.setattr(memory, "available_bytes", lambda: None)  # not checked: the tile asked for
    r = runner.invoke(app, ["restore", str(src), "--device", "cpu", "--tile", "256", "-o", str(tmp_path / "t256.png")])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "auto.png")), np.asarray(Image.open(tmp_path / "t256.png")))


def test_the_default_tile_follows_the_precision():
    """Tiles computed in bf16 or fp16 default to TILE_HALF (faster there, BENCHMARKS.md), fp32 to TILE; a
    tile given is kept."""
    from air_restore.registry.pipeline import load_pipeline

    fp32, bf16 = load_pipeline(device="cpu", precision="fp32"), load_pipeline(device="cpu", precision="bf16")
    assert (fp32.default_tile(), bf16.default_tile()) == (TILE, TILE_HALF)
    assert fp32.memory_plan(3000, 4000).asked == TILE and bf16.memory_plan(3000, 4000).asked == TILE_HALF
    assert bf16.memory_plan(3000, 4000, tile=512).asked == 512

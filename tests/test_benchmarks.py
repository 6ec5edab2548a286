"""Each benchmark script runs on a tiny configuration, so the scripts behind BENCHMARKS.md do not rot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def clean_dir(tmp_path):
    from skimage import data

    d = tmp_path / "clean"
    d.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, name)()).resize((160, 136)).save(d / f"{name}.png")
    return d


def test_quality_script(clean_dir, tmp_path):
    pytest.importorskip("torchmetrics")
    out = tmp_path / "q.json"
    args = ["--clean", str(clean_dir), "--limit", "1", "--out", str(out), "--device", "cpu"]
    if importlib.util.find_spec("bm3d") is not None:
        args.append("--bm3d")
    res = _module("quality").main(args)
    rows = {r["row"]: r for r in res["rows"]}
    assert len(rows) == 8 and out.exists()
    for r in rows.values():
        assert 0 < r["input_psnr"] < 60 and 0 < r["air_ssim"] <= 1
    # Heavier noise makes a worse input: the degradations really are applied at the stated severities.
    assert rows["noise σ=15"]["input_psnr"] > rows["noise σ=25"]["input_psnr"] > rows["noise σ=50"]["input_psnr"]


def test_quality_degradation_is_seeded(clean_dir):
    q = _module("quality")
    x = q._load(next(clean_dir.iterdir()))
    a, b = q.degrade(x, q.ROWS[3], 0), q.degrade(x, q.ROWS[3], 0)
    assert np.array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), q.degrade(x, q.ROWS[3], 1).numpy())


def test_speed_script(tmp_path):
    res = _module("speed").main(["--sizes", "64", "--runs", "1", "--tiling-size", "320", "--big", "320", "--blend", "2", "--blend-size", "64",
                                 "--out", str(tmp_path / "s.json")])
    assert res["cpu"][0]["median_s"] > 0
    assert res["tiling"]["psnr_tiled_vs_whole"] > 40
    assert res["big_image"]["peak_rss_mb"] > 0
    assert (tmp_path / "tiling_tiled.png").exists()
    assert res["blending"][0]["adapters"] == 2 and res["blending"][0]["merged_s"] > 0


def test_segmentation_script(clean_dir):
    res = _module("segmentation").main(["--clean", str(clean_dir), "--crops-per-image", "1", "--crop", "64"])
    assert 0 <= res["pixel_accuracy"] <= 1
    assert sum(map(sum, res["confusion"])) == 2 * 64 * 64


def test_adapters_script(tmp_path):
    from skimage import data

    pairs = tmp_path / "pairs" / "tiny_set"
    for sub in ("clean", "degraded"):
        (pairs / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("astronaut", "coffee", "chelsea"):
        clean = np.asarray(Image.fromarray(getattr(data, name)()).resize((64, 48)))
        Image.fromarray(clean).save(pairs / "clean" / f"{name}.png")
        noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pairs / "degraded" / f"{name}.png")
    res = _module("adapters").main(["--data", str(tmp_path / "pairs"), "--sets", "tiny_set", "--steps", "2",
                                    "--batch-size", "2", "--crop", "32", "--adapters", str(tmp_path / "ad")])
    row = res["sets"][0]
    assert row["heldout_images"] == 1 and row["train_images"] == 2
    assert row["heldout_psnr_input"] < 40 and row["adapter_bytes"] > 0


def test_report_renders_every_result_file(tmp_path):
    """BENCHMARKS.md is regenerated from the committed results without error, one section per file."""
    results = BENCH / "results"
    if not (results / "quality_cbsd68.json").exists():
        pytest.skip("no committed benchmark results to render")
    text = _module("report").main(["--results", str(results), "--out", str(tmp_path / "B.md")])
    for heading in ("## Quality", "## Segmentation head", "## Speed and memory"):
        assert heading in text
    assert (tmp_path / "B.md").read_text() == text


def test_estimator_script(clean_dir):
    res = _module("estimator").main(["--train", str(clean_dir), "--eval", str(clean_dir), "--batches", "2",
                                     "--steps", "2", "--limit", "1"])
    assert res["eval_images"] == 5 and 0 <= res["top1"] <= 1
    assert sum(map(sum, res["confusion"])) == 5 and res["parameters"] <= 500_000

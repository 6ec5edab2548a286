"""Each benchmark script runs on a tiny configuration, so the scripts behind BENCHMARKS.md do not rot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
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
    args = ["--clean", str(clean_dir), "--limit", "1", "--out", str(out), "--device", "cpu", "--tta"]
    if importlib.util.find_spec("bm3d") is not None:
        args.append("--bm3d")
    res = _module("quality").main(args)
    rows = {r["row"]: r for r in res["rows"]}
    assert len(rows) == 8 and out.exists()
    for r in rows.values():
        assert 0 < r["input_psnr"] < 60 and 0 < r["air_ssim"] <= 1 and r["air_s"] > 0
    # Classical baselines side by side: dark channel prior for haze, LIME-style map for low light.
    assert rows["haze"]["baseline"] == "dcp" and 0 < rows["haze"]["dcp_psnr"] < 60
    assert rows["low light"]["baseline"] == "lime" and rows["low light"]["lime_psnr"] > rows["low light"]["input_psnr"]
    # The blended column is there exactly when adapters and an estimator are installed.
    assert ("blended" in res) == ("blended_psnr" in rows["rain"]) and ("blended" in res) != ("blended_skipped" in res)
    # --tta adds the UDAIR column (it refines the blended output, so it needs that column too).
    assert ("tta" in res) == ("blended" in res) == ("tta_psnr" in rows["haze"])
    if "tta" in res:
        assert 0 < rows["haze"]["tta_psnr"] < 60 and rows["haze"]["tta_s"] > 0
        text = "\n".join(_module("report").quality_section(res))
        assert "blended + UDAIR TTA" in text and "air restore --tta" in text
    # Heavier noise makes a worse input: the degradations really are applied at the stated severities.
    assert rows["noise σ=15"]["input_psnr"] > rows["noise σ=25"]["input_psnr"] > rows["noise σ=50"]["input_psnr"]


def test_quality_degradation_is_seeded(clean_dir):
    q = _module("quality")
    x = q._load(next(clean_dir.iterdir()))
    a, b = q.degrade(x, q.ROWS[3], 0), q.degrade(x, q.ROWS[3], 0)
    assert np.array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(a.numpy(), q.degrade(x, q.ROWS[3], 1).numpy())


def test_speed_script(tmp_path):
    res = _module("speed").main(["--sizes", "64", "--tiled-sizes", "96", "--runs", "1", "--tiling-size", "320",
                                 "--big", "320", "--blend", "2", "--blend-size", "64", "--out", str(tmp_path / "s.json")])
    from air_restore.core.runtime import resolve_precision

    whole, tiled = (r for r in res["cpu"] if r["precision"] == "fp32")
    # bf16 rows only where `--precision auto` picks bf16 (a CPU with native bf16), each checked against fp32.
    half = [r for r in res["cpu"] if r["precision"] == "bf16"]
    assert len(half) == (2 if resolve_precision("auto", torch.device("cpu")) == torch.bfloat16 else 0)
    assert all(r["psnr_vs_fp32"] > 40 for r in half) and "psnr_vs_fp32" not in whole
    assert whole["median_s"] > 0 and whole["mode"] == "whole" and tiled["mode"].startswith("tiled")
    assert whole["threads"] >= 1 and whole["megapixels_per_s"] == pytest.approx(64 * 64 / 1e6 / whole["median_s"])
    assert res["tiling"]["psnr_tiled_vs_whole"] > 40
    assert res["big_image"]["peak_rss_mb"] > 0
    assert (tmp_path / "tiling_tiled.png").exists()
    assert res["blending"][0]["adapters"] == 2 and res["blending"][0]["merged_s"] > 0


def test_segmentation_script(clean_dir):
    res = _module("segmentation").main(["--clean", str(clean_dir), "--crops-per-image", "1", "--crop", "64"])
    conf = res["confusion"]
    assert sum(map(sum, conf)) == 2 * 64 * 64
    assert res["pixel_accuracy"] == pytest.approx(sum(conf[i][i] for i in range(len(conf))) / (2 * 64 * 64))


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
    if (results / "no_reference.json").exists():
        assert "## Real photos without a reference: NIQE" in text
    if (results / "peer.json").exists():
        assert "## Same-budget peer" in text
        assert "Peer runs side by side" in text or not list(results.glob("peer_*.json"))
    assert (tmp_path / "B.md").read_text() == text
    for f in results.glob("add_real_*.json"):  # one row per real paired set, in one table
        run = json.loads(f.read_text())
        assert f"| {run['source']['folder']} → {run['name']}" in text
    if list(results.glob("promote_*.json")) and (BENCH.parent / "training" / "base-v2").is_dir():
        assert "## Base v2: chunked training and the promotion gate" in text and "Verdict: **" in text


def test_estimator_script(clean_dir):
    res = _module("estimator").main(["--train", str(clean_dir), "--eval", str(clean_dir), "--batches", "2",
                                     "--steps", "2", "--limit", "1"])
    conf = res["confusion"]
    assert res["eval_images"] == 5 and sum(map(sum, conf)) == 5 and res["parameters"] <= 500_000
    assert res["top1"] == pytest.approx(sum(conf[i][i] for i in range(len(conf))) / 5)


# --- classical baselines (benchmarks/baselines.py) ---------------------------------------------------

def _astronaut(size=(256, 256)):
    import torch
    from skimage import data

    a = np.asarray(Image.fromarray(data.astronaut()).resize(size), dtype=np.float32) / 255
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()


def _psnr(x, ref):
    return -10 * np.log10(float(((x - ref) ** 2).mean()))


def test_dark_channel_prior_dehazes_a_hazed_photo():
    """Haze by the scattering model DCP assumes (I = J·t + A·(1 − t), depth growing down the image)."""
    import torch

    b = _module("baselines")
    clean = _astronaut()
    t = torch.linspace(0.75, 0.3, clean.shape[1]).view(1, -1, 1).expand(1, -1, clean.shape[2])
    air = torch.tensor([0.92, 0.93, 0.95]).view(3, 1, 1)
    hazy = clean * t + air * (1 - t)
    out = b.dark_channel_prior(hazy)
    assert out.shape == hazy.shape and 0 <= out.min() and out.max() <= 1
    assert _psnr(out, clean) > _psnr(hazy, clean) + 5
    # The dark channel of a haze-free photo is dark, of the hazy one bright (the prior itself).
    assert b.dark_channel(clean).mean() + 0.2 < b.dark_channel(hazy).mean()


def test_lime_brightens_a_dark_photo():
    b = _module("baselines")
    clean = _astronaut()
    dark = clean ** 2.2 * 0.25
    out = b.lime(dark)
    assert out.mean() > 2 * dark.mean() and _psnr(out, clean) > _psnr(dark, clean) + 5


def test_guided_filter_smooths_but_keeps_edges():
    import torch
    import torch.nn.functional as F

    b = _module("baselines")
    x = torch.rand(1, 40, 33)
    naive = F.avg_pool2d(x[None], 7, stride=1, padding=3, count_include_pad=False)[0]
    assert torch.allclose(b.box_mean(x, 3), naive, atol=1e-5)
    step = torch.zeros(1, 32, 32)
    step[:, :, 16:] = 1
    noisy = step + 0.05 * torch.randn(step.shape, generator=torch.Generator().manual_seed(0))
    out = b.guided_filter(step, noisy, 4, 1e-3)
    assert (out - step).abs().mean() < 0.5 * (noisy - step).abs().mean()  # noise removed, edge kept


# --- no-reference benchmark, plots, NIQE check ---------------------------------------------------------

def test_no_reference_script(tmp_path):
    from skimage import data

    real = tmp_path / "real"
    for set_name, img in (("dim", "astronaut"), ("hazy", "coffee")):
        (real / set_name).mkdir(parents=True)
        Image.fromarray(getattr(data, img)()).resize((224, 200)).save(real / set_name / "a.png")
    whole = _module("estimator_variant").main(["--crop", "0", "--out", str(tmp_path / "whole.safetensors")])
    out = tmp_path / "nr" / "n.json"
    res = _module("no_reference").main(["--real", str(real), "--limit", "1", "--device", "cpu", "--out", str(out),
                                        "--baseline-estimator", str(whole), "--baseline-label", "crop 0"])
    assert [s["set"] for s in res["sets"]] == ["dim", "hazy"] and res["baseline"] == "crop 0"
    for s in res["sets"]:
        assert s["images"] == 1 and 0 < s["input_niqe"] < 30 and 0 < s["base_niqe"] < 30
        assert len(s["baseline_rows"]) == 1 and 0 < s["baseline_niqe"] < 30
    section = "\n".join(_module("report").no_reference_section(res))
    assert "baseline NIQE median (mean)" in section and "the same blend with crop 0" in section
    with Image.open(out.parent / res["contact_sheet"]) as sheet:
        assert sheet.width > 2 * 224 * 240 / 200 and sheet.height >= 2 * 240


def test_estimator_variant_copies_the_tensors_with_new_settings(tmp_path):
    from air_restore.core.io.weights import read_estimator
    from air_restore.registry.store import bundled_estimator_path

    out = tmp_path / "e.safetensors"
    _module("estimator_variant").main(["--crop", "0", "--on-crops", "haze", "--out", str(out)])
    shipped, variant = read_estimator(bundled_estimator_path()), read_estimator(out)
    assert variant.config == shipped.config.model_copy(update={"crop": 0, "on_crops": ("haze",)})
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), variant.state_dict().values()))
    with pytest.raises(SystemExit, match="exists"):  # never overwrites
        _module("estimator_variant").main(["--crop", "0", "--out", str(out)])


def test_plots_script(tmp_path):
    rows = [{"row": "noise σ=25", "input_psnr": 20.5, "air_psnr": 28.0, "air_s": 0.6, "baseline": "cbm3d",
             "baseline_label": "CBM3D (true σ)", "cbm3d_psnr": 30.3, "cbm3d_s": 7.0},
            {"row": "haze", "input_psnr": 11.0, "air_psnr": 21.7, "air_s": 0.6, "blended_psnr": 23.0, "blended_s": 0.7,
             "baseline": "dcp", "baseline_label": "dark channel prior", "dcp_psnr": 15.0, "dcp_s": 0.1},
            {"row": "blur", "input_psnr": 23.0, "air_psnr": 23.1, "air_s": 0.6}]
    q = {"set": "tiny", "images": 1, "device": "cpu", "torch_threads": 2, "rows": rows}
    (tmp_path / "q.json").write_text(__import__("json").dumps(q))
    run = tmp_path / "run"
    run.mkdir()
    log = [{"step": 0, "chunk": 0, "val_psnr": 21.9}, {"step": 250, "chunk": 1, "val_psnr": 23.8},
           {"step": 500, "chunk": 1, "val_psnr": 24.0}, {"step": 750, "chunk": 2, "val_psnr": 24.1}]
    (run / "log.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in log))
    paths = _module("plots").main(["--results", str(tmp_path), "--quality", "q.json", "--run", str(run)])
    assert [p.name for p in paths] == ["psnr_per_task.png", "quality_vs_time.png", "base_v2_curve.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 300


def test_niqe_check_script(tmp_path):
    """Runs only where BasicSR's source is unpacked (see the script's docstring)."""
    import os

    src = Path(os.environ.get("BASICSR_SRC", "/tmp/bsr/basicsr-1.4.2"))
    if not (src / "basicsr/metrics/niqe.py").exists():
        pytest.skip("BasicSR source not unpacked")
    pytest.importorskip("scipy")
    res = _module("niqe_check").main(["--basicsr", str(src), "--real", str(tmp_path / "none")])
    assert res["max_abs_diff_float64"] < 1e-3 and res["max_abs_diff_float32"] < 0.05


@pytest.fixture()
def photos(tmp_path):
    from skimage import data

    d = tmp_path / "photos"
    d.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        Image.fromarray(getattr(data, name)()).resize((96, 80)).save(d / f"{name}.png")
    return d


def test_peer_script_shipped(photos, tmp_path):
    """Shipped mode: the bundled ABAIR pipeline against the bundled base fine-tuned for the adapters' pixels."""
    res = _module("peer").main(["--data", str(photos), "--work", str(tmp_path / "w"), "--clean", str(photos),
                                "--limit", "1", "--crop", "32", "--max-steps", "2", "--val-every", "2",
                                "--warmup", "1"])
    b = res["budget"]
    # The matched step count comes from the bundled adapters' manifests: their pixels over the peer's crops.
    assert b["adapter_pixels"] == sum(v["steps"] * v["batch_size"] * v["crop"] ** 2 for v in b["adapters"].values())
    assert b["capped_from"] == -(-b["adapter_pixels"] // (8 * 32 * 32)) and b["peer_steps"] == 2
    assert res["training"]["peer"]["init"] == "base-v1.safetensors" and res["training"]["peer"]["steps"] == 2
    # Same network: the peer is the bundled base's architecture, fine-tuned, so its weights moved.
    assert res["parameters"]["peer"] == res["parameters"]["abair_base"]
    rows = {r["row"]: r for r in res["rows"]}
    assert any(r["peer_psnr"] != r["abair_base_psnr"] for r in rows.values())
    text = "\n".join(_module("report_adapters").peer_section(res))
    assert "shipped mode" in text and "Smoke run" in text


def test_peer_script_scratch(photos, tmp_path):
    """Both arms train from scratch on the same crops for the same step count, and are evaluated side by side."""
    work = tmp_path / "work"
    args = ["--mode", "scratch", "--data", str(photos), "--work", str(work), "--clean", str(photos), "--limit", "1",
            "--base-steps", "2", "--adapter-steps", "1", "--batch-size", "2", "--crop", "32", "--val-every", "2",
            "--warmup", "1", "--out", str(tmp_path / "peer.json")]
    res = _module("peer").main(args)
    b, n = res["budget"], res["parameters"]
    from air_restore.registry.store import BUNDLED_PLUGINS

    steps = 2 + len(BUNDLED_PLUGINS)  # the base's 2 steps and one per bundled adapter, trained from scratch
    assert b["adapters"] == list(BUNDLED_PLUGINS) and b["peer_steps"] == steps
    assert b["peer_steps"] == b["base_steps"] + len(b["adapters"]) * b["adapter_steps_each"]
    assert b["adapter_crops"] == {"haze": (64, 1)}  # twice the crop, the batch cut to keep the pixels per step
    assert res["training"]["peer"]["steps"] == steps and res["training"]["abair_base"]["steps"] == 2
    assert n["abair_base"] < n["peer"] < n["abair_base"] + n["abair_adapters"] + n["estimator"] + 100_000
    assert sorted(p.name for p in (work / "abair" / "adapters").iterdir()) == sorted(b["adapters"])
    rows = {r["row"]: r for r in res["rows"]}
    assert len(rows) == 11 and "haze+noise" in rows
    for r in rows.values():
        assert 0 < r["peer_psnr"] < 60 and 0 < r["abair_blended_ssim"] <= 1 and r["peer_s"] > 0
    # The blended column really blends. One optimizer step moves an image by ~1e-7, below 8-bit rounding,
    # so check the parts instead: the estimator gives the adapters weight and each adapter moves the convs.
    import torch

    from air_restore.core.io.images import read_image
    from air_restore.core.lora import BlendedConv2d

    r = _module("blending").pipeline(work / "abair" / "base.safetensors",
                                     [work / "abair" / "adapters" / n for n in BUNDLED_PLUGINS])
    w, _ = r.assess(read_image(next(photos.iterdir())).rgb)
    assert w.sum() > 0
    convs = [m for m in r.model.modules() if isinstance(m, BlendedConv2d)]
    eye = torch.eye(len(BUNDLED_PLUGINS))
    for k in range(len(BUNDLED_PLUGINS)):
        assert any(not torch.equal(m.merge(eye[k]), m.merge(torch.zeros(len(BUNDLED_PLUGINS)))) for m in convs)
    # A second run reuses the finished parts instead of retraining them.
    before = (work / "peer" / "base.safetensors").stat().st_mtime_ns
    _module("peer").main(args[:-2] + ["--only", "peer"])
    assert (work / "peer" / "base.safetensors").stat().st_mtime_ns == before
    text = "\n".join(_module("report_adapters").peer_section(res))
    assert "| haze+noise |" in text and "Same-budget peer" in text


def test_over_script(clean_dir, tmp_path):
    """benchmarks/over.py swaps one bundled adapter for one trained with --over and measures both pipelines."""
    from typer.testing import CliRunner

    from air_restore.cli.main import app

    ad = tmp_path / "noise"
    r = CliRunner().invoke(app, ["train", "adapter", "noise", "--synthetic", "noise", "--over", "haze,rain",
                                 "--clean", str(clean_dir), "--out", str(ad), "--steps", "2", "--batch-size", "2",
                                 "--crop", "32", "--over-share", "1"])
    assert r.exit_code == 0, r.output
    res = _module("over").main(["--adapter", str(ad), "--clean", str(clean_dir), "--limit", "1", "--size", "64"])
    tasks = [row["task"] for row in res["rows"]]
    from air_restore.registry.store import BUNDLED_PLUGINS

    # noise, then each other bundled degradation on its own and under noise
    assert tasks[0] == "noise" and "haze+noise" in tasks and "rain" in tasks and len(tasks) == 2 * len(BUNDLED_PLUGINS) - 1
    assert res["over"] == ["haze", "rain"] and res["over_share"] == 1.0 and res["rank"] == 4
    for row in res["rows"]:
        assert 0 < row["input"] < 60 and 0 < row["over_blended"] < 60
    # The two arms differ only by the swapped adapter: alone at weight 1 they differ, the base is shared.
    assert res["rows"][0]["over_alone"] != res["rows"][0]["bundled_alone"]
    text = "\n".join(_module("report_adapters").over_section(res))
    assert "--over haze,rain" in text and "| haze+noise |" in text


def test_family_script(clean_dir, tmp_path):
    """benchmarks/family.py: a --family adapter beside the bundled one of its name, alone, row per family variant."""
    from typer.testing import CliRunner

    from air_restore.cli.main import app

    ad = tmp_path / "rain"
    r = CliRunner().invoke(app, ["train", "adapter", "rain", "--synthetic", "rain", "--family", "--clean",
                                 str(clean_dir), "--out", str(ad), "--steps", "2", "--batch-size", "2", "--crop", "32",
                                 "--lr", "1e-2"])
    assert r.exit_code == 0, r.output
    res = _module("family").main(["--adapter", str(ad), "--clean", str(clean_dir), "--limit", "1", "--size", "64"])
    tasks = [row["task"] for row in res["rows"]]
    assert tasks == ["rain 0.5", "rain 0.15", "family: drizzle 0.5", "family: rain_over_haze 0.5",
                     "rain 0.5 + jpeg q≈90", "rain 0.5 + jpeg q≈50", "clean"]
    rain = res["rows"][0]
    assert rain["new"] != rain["bundled"] and rain["input"] < rain["base"]  # the base removes some rain
    text = "\n".join(_module("report_adapters").family_section(res))
    assert "--family" in text and "| family: drizzle 0.5 |" in text
    # --pipeline: the whole pipeline with each (the baseline given here is the new adapter itself, so the
    # two pipeline columns must agree), the stacked rows that hold rain and the real pairs of every set
    res = _module("family").main(["--adapter", str(ad), "--baseline", str(ad), "--pipeline", "--clean", str(clean_dir),
                                  "--limit", "1", "--size", "64"])
    tasks = [row["task"] for row in res["rows"]]
    assert "haze+rain" in tasks and "rain+blur+noise" in tasks and "haze+blur" not in tasks
    assert all(row["pipeline_new"] == row["pipeline_bundled"] and row["new"] == row["bundled"] for row in res["rows"])
    assert "| pipeline, previous |" in "\n".join(_module("report_adapters").family_section(res))


def test_family_script_measures_noise_without_colour_against_grey_photos(clean_dir):
    """benchmarks/family.py, noise: grey photos are compared with the grey photo, and the bundled lumanoise adapter
    (the noise adapter trained with luminance noise and grey crops) removes noise from one (base v1 and the noise
    adapter: ±0.1 dB)."""
    from air_restore.registry.store import bundled_adapters

    noise = next(a.path for a in bundled_adapters() if a.name == "lumanoise")
    res = _module("family").main(["--adapter", str(noise), "--clean", str(clean_dir), "--limit", "1", "--size", "96"])
    rows = {r["task"]: r for r in res["rows"]}
    assert rows["grey photo, clean"]["input"] == pytest.approx(100.0)  # the reference is the grey photo
    grey = rows["grey photo, noise σ 25"]
    assert 19.5 < grey["input"] < 21.5
    assert grey["new"] > grey["input"] + 2.0 and grey["base"] < grey["input"] + 1.0
    assert rows["luminance noise σ 20"]["new"] > rows["luminance noise σ 20"]["input"] + 2.0


def test_profile_script_splits_the_convolutions_by_kind():
    """benchmarks/profile_restore.py: operator groups of one profiled restore, the convolutions told apart by
    their weight shapes (the base has 1×1 and depthwise 3×3 convs, and a few others)."""
    res = _module("profile_restore").main(["--sizes", "64", "--threads", "1", "--top", "30"])
    row = res["rows"][0]
    ops = {o["op"]: o for o in row["ops"]}
    assert {"conv 1×1", "conv depthwise 3×3", "conv other"} <= set(ops)
    assert row["ms_per_mp"] == pytest.approx(1000 * row["wall_s"] / (64 * 64 / 1e6))
    assert not [op for op in ops if "conv" in op and not op.startswith("conv ")]  # every conv backend op sorted


def test_promote_script_passes_the_same_base_and_refuses_a_worse_one(clean_dir, tmp_path):
    """The promotion gate on a tiny run: the bundled base against itself changes no row (PROMOTE);
    a candidate with its output layer damaged loses every row and is refused, with the rows named."""
    import torch
    from skimage import data

    from air_restore.core.io.weights import save_base
    from air_restore.registry.store import bundled_base_path, load_base

    pairs = tmp_path / "pairs" / "noise_set"
    for sub in ("degraded", "clean"):
        (pairs / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(("astronaut", "coffee")):
        a = np.asarray(Image.fromarray(getattr(data, name)()).resize((96, 80)))
        Image.fromarray(a).save(pairs / "clean" / f"p{i}.png")
        noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pairs / "degraded" / f"p{i}.png")
    real = tmp_path / "real" / "set"
    real.mkdir(parents=True)
    Image.fromarray(data.astronaut()).resize((200, 104)).save(real / "a.png")

    promote = _module("promote")
    assert promote.held_out([f"{i:03d}.png" for i in range(20)]) == ["018.png", "019.png"]
    common = ["--clean", str(clean_dir), "--limit", "1", "--pairs", str(tmp_path / "pairs"),
              "--real", str(tmp_path / "real"), "--niqe-limit", "1"]
    same = promote.main(["--candidate", str(bundled_base_path()), *common, "--out", str(tmp_path / "p.json")])
    assert same["promote"] and same["losses"] == []
    groups = {r["group"] for r in same["rows"]}
    assert groups == {"single", "stacked", "flat sky", "clean", "real pairs", "NIQE"}
    assert all(r["candidate"] == r["reference"] for r in same["rows"])
    assert [r["images"] for r in same["rows"] if r["group"] == "real pairs"] == [1]  # held-out split only
    assert (tmp_path / "p.json").is_file()

    model, _ = load_base()
    with torch.no_grad():
        model.ending.weight.mul_(-3.0)  # the restored residual now points the wrong way, three times over
    worse = tmp_path / "worse.safetensors"
    save_base(model, worse)
    res = promote.main(["--candidate", str(worse), *common])
    assert not res["promote"]
    psnr_rows = [r for r in res["rows"] if r["metric"] == "psnr"]
    kept = [r["row"] for r in psnr_rows if r["candidate"] >= r["reference"] - 0.1]
    assert len(kept) <= 2, kept  # lowlight + jpeg and lowlight + noise + jpeg: the gate gives those back as they came
    assert any("stacked / haze + noise" in loss for loss in res["losses"])
    assert any("flat sky /" in loss for loss in res["losses"])


def test_promote_judges_the_rows_of_an_adapter_retrained_on_the_candidate(clean_dir, tmp_path):
    """``promote.py --adapter DIR``: the rows with the adapter's degradation in their name run each base with its own
    adapter of that name (the candidate's: DIR; the reference's: the installed one) at weight 1, gate on; every
    other row is each base alone, as without the option. An adapter made for another base is refused."""
    import torch
    from typer.testing import CliRunner

    from air_restore.cli.main import app
    from air_restore.core.io.weights import save_base
    from air_restore.registry.store import bundled_base_path, load_base

    ad = tmp_path / "lowlight"
    r = CliRunner().invoke(app, ["train", "adapter", "lowlight", "--synthetic", "lowlight", "--clean", str(clean_dir),
                                 "--out", str(ad), "--steps", "2", "--batch-size", "2", "--crop", "32"])
    assert r.exit_code == 0, r.output
    promote = _module("promote")
    common = ["--candidate", str(bundled_base_path()), "--clean", str(clean_dir), "--limit", "1"]
    alone = {r["row"]: r for r in promote.main(common)["rows"]}
    res = promote.main([*common, "--adapter", str(ad)])
    assert res["candidate"]["adapters"] == {"lowlight": str(ad)}
    with_it = [r for r in res["rows"] if r.get("with")]
    assert {r["row"] for r in with_it} == {r for r in alone if "low" in r} and len(with_it) >= 10
    assert all(r["with"] == ["lowlight"] for r in with_it)
    # Its own two-step adapter against the bundled one: those rows differ, with the adapter on either side.
    assert all(r["candidate"] != r["reference"] and r["reference"] != alone[r["row"]]["reference"] for r in with_it)
    for r in res["rows"]:
        if not r.get("with"):
            assert r["candidate"] == r["reference"] == alone[r["row"]]["reference"]
    v2 = tmp_path / "v2.safetensors"
    model = load_base()[0]
    with torch.no_grad():
        model.ending.weight.mul_(1.01)
    save_base(model, v2)  # another base: another fingerprint
    with pytest.raises(Exception, match="trained for base"):
        promote.main(["--candidate", str(v2), "--clean", str(clean_dir), "--limit", "1", "--adapter", str(ad)])


def test_gate_script(clean_dir, tmp_path):
    """The gate keeps a clean photo closer to itself than the network alone, and changes the noisy rows little."""
    import json

    rows = _module("gate").main(["--clean", str(clean_dir), "--limit", "1", "--out", str(tmp_path / "g.json")])
    by = {(r["task"], r["severity"]): r for r in rows}
    assert by[("clean", 0.0)]["gated"] > by[("clean", 0.0)]["ungated"]
    assert abs(by[("noise", 0.5)]["gated"] - by[("noise", 0.5)]["ungated"]) < 0.5
    assert json.loads((tmp_path / "g.json").read_text())["rows"] == rows


def test_speed_paths_script(tmp_path):
    """#15: the fused layer norm gives the reference's output; a too-small overlap is caught by its PSNR."""
    import json

    res = _module("speed_paths").main(["--sizes", "64", "--tiled", "128", "--runs", "1", "--tile", "64",
                                       "--overlaps", "32", "8", "--threads", "1", "--out", str(tmp_path / "s.json")])
    rf = res["receptive_field"]
    assert rf["r99"] <= rf["r999"] <= rf["extent"] and 40 <= rf["extent"] <= 200
    rows = {(r["size"], r["mode"], r["layer_norm"]): r for r in res["rows"]}
    # Float rounding on an AVX2 CPU (≥ 90 dB there). On an AVX-512 one torch's fused layer norm gets the variance
    # less exactly (2e-4 off on channels of mean 5, spread 0.01), 55 dB here: the bar for a fast path is 45.
    assert rows[(64, "whole", "fused")]["psnr_vs_reference"] >= 45
    assert rows[(128, "tiled 64/32", "fused")]["psnr_vs_reference"] >= 60
    assert rows[(128, "tiled 64/8", "fused")]["psnr_vs_reference"] < 45  # far below the receptive field: seams
    assert (128, "tiled 64/8", "unfused") not in rows
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == res["rows"]


def test_speed_cpu_script_runs_each_variant_in_its_own_process():
    """#15: every variant in a fresh process, the allocator setting on except in *before*; even tiles give
    the same output as before's tiling (within float rounding), and the smaller overlaps are caught by
    their PSNR on a photo tiled far below the receptive field."""
    res = _module("speed_cpu").main(["--sizes", "64", "--tiled", "200", "--big", "0", "--runs", "1",
                                     "--threads", "1", "--scale", "8"])
    rows = {(r["variant"], r["height"]): r for r in res["rows"]}
    assert [v for v, h in rows if h == 200] == [v[0] for v in _module("speed_cpu").VARIANTS]
    assert not rows[("before", 200)]["kept_freed_memory"] and rows[("allocator", 200)]["kept_freed_memory"]
    assert rows[("allocator", 200)]["psnr_vs_before"] == 100.0  # the allocator changes nothing but speed
    assert rows[("even tiles", 200)]["psnr_vs_before"] >= 60
    assert rows[("overlap 64", 200)]["mode"] == "tiled 64/8" and rows[("overlap 64", 200)]["psnr_vs_before"] < 45
    assert all(r["psnr_vs_before"] == 100.0 for (v, h), r in rows.items() if h == 64)  # whole: one tile


def test_arch_speed_counts_every_convolution_and_states_the_floor(tmp_path):
    """#15/#18: GFLOP per megapixel is the sum over every convolution of 2·out·(in/groups)·k² per output
    pixel (counted here by hooks, independently of torch's FlopCounterMode), and the floor is that over
    the measured matrix-product peak; the bundled shape has the bundled base's parameters."""
    import torch

    from air_restore.core.arch import count_parameters
    from air_restore.registry.store import load_base

    mod = _module("arch_speed")
    model, flops = mod.build("v1"), []

    def hook(m, _inp, out):
        flops.append(2 * out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.rand(1, 3, 128, 128), segment=True)
    by_hooks = sum(flops) / (128 * 128 / 1e6) / 1e9
    assert mod.gflop_per_megapixel(model) == pytest.approx(by_hooks, rel=1e-9)

    res = mod.main(["--sizes", "64", "--runs", "1", "--configs", "v1", "w16", "--threads", "1",
                    "--out", str(tmp_path / "a.json")])
    rows = {r["name"]: r for r in res["rows"]}
    assert rows["v1"]["params"] == count_parameters(load_base()[0])
    assert rows["w16"]["gflop_per_mp"] < 0.5 * rows["v1"]["gflop_per_mp"]  # 1×1 convs scale with width²
    for r in rows.values():
        assert r["floor_ms_per_mp"] == pytest.approx(r["gflop_per_mp"] / res["matmul_peak_gflops"] * 1000)
        assert set(r["ms_per_mp"]) == {"64"}
    assert json.loads((tmp_path / "a.json").read_text())["rows"] == res["rows"]
    assert "| v1 |" in "\n".join(_module("report").arch_speed_section(res))
    half = mod.main(["--sizes", "64", "--runs", "1", "--configs", "v1", "--threads", "1", "--precision", "bf16"])
    assert half["precision"] == "bf16" and half["rows"][0]["gflop_per_mp"] == rows["v1"]["gflop_per_mp"]
    assert "the best of ten bf16 2048³" in "\n".join(_module("report").arch_speed_section(half))


def test_fast_paths_script_compares_every_path_with_the_reference(tmp_path):
    """#15 item 4: each fast path of `air restore` against the plain fp32 whole-image reference, per task.
    The exact paths (fused layer norm, merged adapters) agree to float rounding; tiles in batches give
    the same output as one at a time; the half-precision paths run on the first --half-limit photos only."""
    from skimage import data

    clean, examples = tmp_path / "clean", tmp_path / "examples"
    clean.mkdir(), examples.mkdir()
    for d, name in ((clean, "astronaut"), (clean, "coffee"), (examples, "chelsea")):
        Image.fromarray(getattr(data, name)()).resize((280, 136)).save(d / f"{name}.png")  # 1×2 tiles of 256
    # The shipped examples are degraded photos; a clean one is given back as it came on every path (the gate)
    cat = np.asarray(Image.open(examples / "chelsea.png"), dtype=np.float64)
    noisy = cat + np.random.default_rng(0).normal(0, 20, cat.shape)
    Image.fromarray(noisy.clip(0, 255).round().astype(np.uint8)).save(examples / "chelsea.png")
    res = _module("fast_paths").main(["--clean", str(clean), "--limit", "2", "--half-limit", "1", "--tasks", "noise",
                                      "--examples", str(examples), "--threads", "1", "--out", str(tmp_path / "f.json")])
    rows = {(r["task"], r["path"]): r for r in res["rows"]}
    paths = [p for p, _ in _module("fast_paths").PATHS]
    assert [p for t, p in rows if t == "noise"] == paths == [p for t, p in rows if t == "shipped examples"]
    for task in ("noise", "shipped examples"):
        for exact in ("fused layer norm", "merged adapters"):
            assert rows[(task, exact)]["min_psnr_vs_reference"] >= 90
        one, four = rows[(task, "tiles 256/128")], rows[(task, "tiles 256/128, 4 at once")]
        assert one["min_psnr_vs_reference"] == four["min_psnr_vs_reference"] < 100  # two tiles: not the reference
        assert rows[(task, "bf16 autocast")]["images"] == 1 and rows[(task, "fp16 autocast")]["images"] == 1
        assert rows[(task, "bf16 autocast")]["min_psnr_vs_reference"] < 100
    assert rows[("noise", "tiles 256/128")]["images"] == 2 and "quality_change_db" in rows[("noise", "bf16 autocast")]
    assert "quality_change_db" not in rows[("shipped examples", "bf16 autocast")]  # no clean photo
    text = "\n".join(_module("report").fast_paths_section(res))
    assert "| noise | 2 |" in text and "| shipped examples | 1 |" in text


def test_reliability_script_counts_outcomes(monkeypatch):
    """benchmarks/reliability.py counts each fuzzed input's outcome; a reader that crashes is counted as such."""
    mod = _module("reliability")
    res = mod.main(["--examples", "3"])
    assert [r["class"] for r in res["rows"]][:2] == ["image reader: random bytes", "image reader: damaged files"]
    for r in res["rows"]:
        assert r["tried"] >= 1 and r["tried"] == r["read"] + r["restored"] + r["refused"] + r["crash"]
    assert res["crashes"] == 0 and res["files_lost"] == 0

    def broken(path):
        raise RuntimeError("boom")

    monkeypatch.setattr(mod, "read_image", broken)
    bad = mod.main(["--examples", "3"])["rows"][0]
    assert bad["crash"] == bad["tried"] >= 1


def test_dark_scenes_script_runs_both_estimators_on_the_same_inputs(clean_dir, tmp_path):
    """#14: dark scenes (clean version as dark) beside under-exposed photos (clean version the original), the
    shipped estimator and a candidate on the same seeded inputs. The shipped file given as the candidate must
    give the same numbers; a dark scene's input is its clean version but for 8-bit rounding; the pipeline
    brightens low light."""
    import json

    from air_restore.registry.store import bundled_estimator_path

    res = _module("dark_scenes").main(["--clean", str(clean_dir), "--limit", "1", "--size", "96",
                                       "--estimator", str(bundled_estimator_path()), "--out", str(tmp_path / "d.json")])
    rows = {r["task"]: r for r in res["rows"]}
    assert list(rows) == list(_module("dark_scenes").TASKS)
    for r in rows.values():
        assert r["shipped"] == r["candidate"] and r["shipped_lowlight_weight"] == r["candidate_lowlight_weight"]
    assert rows["dark scene ×0.3"]["input"] > 45 and rows["low light 0.5"]["input"] < 15
    assert rows["low light 0.5"]["shipped"] > rows["low light 0.5"]["input"] + 5
    assert json.loads((tmp_path / "d.json").read_text())["rows"] == res["rows"]
    text = "\n".join(_module("report").dark_scenes_section(res))
    assert "| dark scene ×0.3 | 1 |" in text and "+0.00 |" in text


def test_floors_script_puts_the_pipeline_beside_itself_without_its_floors(clean_dir, tmp_path):
    """benchmarks/floors.py: the shipped pipeline with and without the noise floor on the same seeded inputs. Grey
    noise gets the whole noise weight and gains (on this small photo the estimator gives it 0.87 already); clean photos and colour noise (which the head sees) come out the same to
    the bit; a real grey noisy photo is scored by NIQE both ways, and the report renders both tables."""
    from skimage import data

    rni = tmp_path / "real" / "RNI6"
    rni.mkdir(parents=True)
    grey = data.camera()[100:300, 150:350].astype(np.float32)
    noisy = grey + np.random.default_rng(0).normal(0, 12, grey.shape)
    Image.fromarray(noisy.clip(0, 255).round().astype(np.uint8)).save(rni / "grey.png")
    mod = _module("floors")
    res = mod.main(["--clean", str(clean_dir), "--limit", "1", "--size", "192", "--real", str(tmp_path / "real")])
    rows = {r["task"]: r for r in res["rows"]}
    assert list(rows) == [row[0] for row in mod.ROWS]
    for task in ("clean", "colour noise σ 15"):
        assert rows[task]["with"] == rows[task]["without"], task
    g = rows["grey photo, noise σ 10"]
    assert g["weight_with"] > 0.99 > g["weight_without"] and g["with"] > g["without"] + 0.2, g
    (real,) = res["real"]
    assert real["set"] == "RNI6" and real["weight_with"] > real["weight_without"] and real["mean_abs_change"] > 0.5
    text = "\n".join(_module("report").floors_section(res))
    assert "| grey photo, noise σ 10 | 1 |" in text and "| RNI6 | 1 |" in text and "RNI6/grey.png NIQE" in text


def test_real_baselines_script_puts_cbm3d_beside_the_pipeline(tmp_path):
    """benchmarks/real_baselines.py on a tiny paired folder laid out as PolyU: white Gaussian noise of σ 10, whose
    σ the blind estimator finds (real camera noise it underestimates, BENCHMARKS.md), and CBM3D with it beats
    the input; the report renders the row."""
    pytest.importorskip("bm3d")
    from skimage import data

    root = tmp_path / "noise_real_PolyU"
    g = np.random.default_rng(0)
    for sub in ("clean", "degraded"):
        (root / sub).mkdir(parents=True)
    for name in ("astronaut", "coffee"):
        clean = np.asarray(Image.fromarray(getattr(data, name)()).resize((128, 128)), dtype=np.float64)
        noisy = np.clip(clean + g.normal(0, 10, clean.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(clean.round().astype(np.uint8)).save(root / "clean" / f"{name}.png")
        Image.fromarray(noisy).save(root / "degraded" / f"{name}.png")
    out = tmp_path / "r.json"
    res = _module("real_baselines").main(["--pairs", str(tmp_path), "--limit", "1", "--out", str(out)])
    (row,) = res["rows"]
    assert abs(row["true_sigma_255"] - 10) < 1 and abs(row["sigma_255"] - 10) < 2.5, row
    assert row["cbm3d"] > row["input"] + 3 and row["cbm3d_true_sigma"] > row["input"] + 3
    assert json.loads(out.read_text())["pairs"] == 1 and "realnoise" in res["adapters"]
    text = "\n".join(_module("report").real_baselines_section(res))
    assert f"{row['cbm3d']:.2f}" in text and "CBM3D, blind" in text

"""Tests for Phase I training (air_restore.core.training.base): a tiny real run on real photos, then a resume.

The photos come from scikit-image's bundled samples, shrunk to about 80×100 px. The model is a
one-level, 8-channel AirUNet, so the whole module runs in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from skimage import data as skdata

from air_restore.core.training.base import TrainBaseConfig, _lr_at, load_clean_folder, random_crops, train_base
from air_restore.core.arch import AirUNetConfig
from air_restore.registry.discovery import get_degradation
from air_restore.core.io.weights import read_base_info
from air_restore.registry.store import load_base

TINY = AirUNetConfig(width=8, enc_blocks=(1,), dec_blocks=(1,), middle_blocks=1)
CLASSES = TINY.classes[1:]  # noise, blur, haze, rain, lowlight


def _tiny_config(steps: int) -> TrainBaseConfig:
    return TrainBaseConfig(steps=steps, batch_size=2, crop=32, val_images=1, val_every=3, checkpoint_every=3,
                           warmup=1, model=TINY)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    """Six real photos, 80×100 (and one portrait 100×80), from scikit-image's samples."""
    d = tmp_path_factory.mktemp("photos")
    sources = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    k = 0
    for a in sources:
        h, w = a.shape[:2]
        for crop in (a[: h * 3 // 4, : w * 3 // 4], a[h // 4:, w // 4:]):
            if k == 6:
                break
            im = Image.fromarray(np.ascontiguousarray(crop)).resize((100, 80), Image.BICUBIC)
            if k == 5:
                im = im.transpose(Image.Transpose.TRANSPOSE)  # portrait: the loader turns it back
            im.save(d / f"photo{k}.png")
            k += 1
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def synthesizers():
    return [get_degradation(name).synthesize for name in CLASSES]


@pytest.fixture(scope="module")
def first_run(photo_dir: Path, synthesizers, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("run")
    logs: list[str] = []
    path = train_base(photo_dir, out_dir, synthesizers, config=_tiny_config(6), log=logs.append)
    info = read_base_info(path)  # read now: the resume test overwrites the file
    rows = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    return out_dir, path, info, logs, rows


def test_a_tiny_run_writes_base_weights_with_its_training_record(first_run, photo_dir: Path) -> None:
    out_dir, path, info, logs, rows = first_run
    assert path == out_dir / "base.safetensors" and path.is_file()
    assert info.config == TINY
    assert info.training["steps"] == 6
    assert info.training["data"] == {"folder": photo_dir.name, "images": 5, "held_out": 1, "crop": 32}
    assert info.training["config"]["steps"] == 6
    assert info.training["weights"] in ("ema", "last")
    assert set(info.metrics) == {"val_psnr_input", "val_psnr", "val_seg_acc"}
    assert all(np.isfinite(v) for v in info.metrics.values())
    with safe_open(str(path), framework="pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    model, loaded = load_base(path)  # the fingerprint in the file matches its tensors
    assert loaded.fingerprint == info.fingerprint and model.config == TINY
    assert not any("resumed" in line for line in logs)
    assert any("5 training photos, 1 held out" in line for line in logs)
    assert [r["step"] for r in rows] == [3, 6]
    assert all(np.isfinite(r["loss_l1"]) and np.isfinite(r["loss_ce"]) for r in rows)
    with safe_open(str(out_dir / "checkpoint.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "6"


def test_a_time_budget_fits_the_steps_and_ships_what_ran(photo_dir: Path, synthesizers, tmp_path) -> None:
    """The engine's budget: the run keeps 30 s of the budget for validation and saving, so a 32 s budget
    trains for about 2 s, far fewer than the configured steps, and records what ran."""
    import time

    cfg = _tiny_config(100_000).model_copy(update={"time_budget": 32.0, "val_every": 10**6, "checkpoint_every": 10**6})
    started = time.monotonic()
    path = train_base(photo_dir, tmp_path / "run", synthesizers, config=cfg, log=lambda s: None)
    took = time.monotonic() - started
    steps = read_base_info(path).training["steps"]
    assert 2 <= steps < 100_000 and took < 30
    with safe_open(str(tmp_path / "run" / "checkpoint.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == str(steps)  # the last step is checkpointed, as at the end of any run


def test_a_longer_run_resumes_from_the_checkpoint(first_run, photo_dir: Path, synthesizers) -> None:
    out_dir, _, first_info, _, _ = first_run
    logs: list[str] = []
    path = train_base(photo_dir, out_dir, synthesizers, config=_tiny_config(9), log=logs.append)
    resumed = [line for line in logs if "resumed" in line]
    assert len(resumed) == 1 and "at step 6" in resumed[0]
    info = read_base_info(path)
    assert info.training["steps"] == 9
    assert info.fingerprint != first_info.fingerprint  # three more steps changed the weights
    rows = [json.loads(line) for line in (out_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 9]
    with safe_open(str(out_dir / "checkpoint.safetensors"), framework="pt") as f:
        assert f.metadata()["step"] == "9"


def test_wrong_number_of_synthesizers_is_refused_before_any_work(photo_dir: Path, synthesizers, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one per class"):
        train_base(photo_dir, tmp_path / "run", synthesizers[:4], config=_tiny_config(1), log=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_load_clean_folder_transposes_portraits_and_skips_small_images(photo_dir: Path, tmp_path: Path) -> None:
    data, names = load_clean_folder(photo_dir, min_side=32)
    assert data.dtype == torch.uint8 and data.shape == (6, 3, 80, 100)
    assert names == [f"photo{k}.png" for k in range(6)]
    with Image.open(photo_dir / "photo5.png") as im:
        portrait = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 1, 0)  # transposed back
    assert torch.equal(data[5], portrait)
    with pytest.raises(ValueError, match="no usable images"):
        load_clean_folder(photo_dir, min_side=81)


def test_random_crops_come_from_the_photos_and_follow_the_seed(photo_dir: Path) -> None:
    data, _ = load_clean_folder(photo_dir, min_side=32)
    a = random_crops(data, 4, 32, torch.Generator().manual_seed(3))
    b = random_crops(data, 4, 32, torch.Generator().manual_seed(3))
    c = random_crops(data, 4, 32, torch.Generator().manual_seed(4))
    assert a.shape == (4, 3, 32, 32) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, (a * 255).round() / 255)  # exact 8-bit values, no resampling
    assert a.min() >= 0 and a.max() <= 1


def test_learning_rate_warms_up_then_decays_to_two_percent() -> None:
    cfg = TrainBaseConfig(lr=1e-3, warmup=10, model=TINY)
    assert _lr_at(0, 100, cfg) == pytest.approx(1e-4)
    assert _lr_at(9, 100, cfg) == pytest.approx(1e-3)
    assert _lr_at(10, 100, cfg) == pytest.approx(1e-3)
    lrs = [_lr_at(s, 100, cfg) for s in range(10, 101)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))
    assert _lr_at(100, 100, cfg) == pytest.approx(2e-5)


# ------------------------------------------------------------------------------ chunked training


def _chunk_config(steps: int, **kw) -> TrainBaseConfig:
    return TrainBaseConfig(steps=steps, batch_size=2, crop=32, val_images=1, val_every=2, warmup=2, rewarm=3,
                           recipe="widened", p_clean=0.15, p_stack=0.3, model=TINY, **kw)


def test_chunks_resume_from_committed_weights_and_state(photo_dir: Path, tmp_path: Path) -> None:
    from air_restore.core.training.chunks import read_chunk_state, train_base_chunk

    run = tmp_path / "base-v2"
    first = train_base_chunk(photo_dir, run, config=_chunk_config(8), time_budget=25, log=lambda s: None)
    assert run.joinpath("training-state.json").is_file() and read_chunk_state(run) == first
    assert first["chunks"] == 1 and 0 < first["step"] <= 8
    assert first["config"]["recipe"] == "widened" and first["seed_position"]["next_chunk"] == 2
    info = read_base_info(run / "base.safetensors")
    assert info.training["recipe"] == "widened" and info.training["steps"] == first["step"]
    assert not (run / "checkpoint.safetensors").exists()  # no optimizer state is kept
    # The second chunk asks for another recipe: the recorded one wins, and the schedule may grow.
    # So does the recorded batch size, and the log says so (a larger one asked for on a CPU ran out of memory).
    logs: list[str] = []
    second = train_base_chunk(photo_dir, run, config=_chunk_config(40).model_copy(update={"recipe": "v1",
                                                                                          "batch_size": 64}),
                              time_budget=25, log=logs.append)
    assert second["chunks"] == 2 and second["step"] > first["step"]
    assert second["config"]["recipe"] == "widened" and second["config"]["steps"] == 40
    assert second["config"]["batch_size"] == 2
    assert any(line.startswith("the run's own batch size 2 (given 64): a run keeps its settings") for line in logs)
    assert [c["chunk"] for c in second["chunk_log"]] == [1, 2]
    # Changing the recipe of a run takes an explicit request, and the chunk log says where it changed (to the
    # newest recipe: dim and sky targets, JPEG after haze, low light over whole crops, grey crops).
    logs: list[str] = []
    third = train_base_chunk(photo_dir, run, config=_chunk_config(200).model_copy(update={"recipe": "widened7"}),
                             time_budget=22, change_recipe=True, log=logs.append)
    assert third["config"]["recipe"] == "widened7"
    assert [c["recipe"] for c in third["chunk_log"]] == ["widened", "widened", "widened7"]
    assert any(f"from widened to widened7 at step {second['step']}" in line for line in logs)
    assert third["chunk_log"][1]["steps"] == second["step"] - first["step"]
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert rows[0]["chunk"] == 0 and rows[0]["step"] == 0  # where the run started
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert {r["chunk"] for r in rows} == {0, 1, 2, 3}
    assert read_base_info(run / "base.safetensors").fingerprint != info.fingerprint


def test_a_chunk_starts_from_init_weights_and_refuses_a_finished_run(photo_dir: Path, tmp_path: Path) -> None:
    from air_restore.core.training.chunks import train_base_chunk
    from air_restore.core.arch import AirUNet
    from air_restore.core.io.weights import save_base

    init = tmp_path / "init.safetensors"
    torch.manual_seed(0)
    save_base(AirUNet(config=TINY), init)
    logs: list[str] = []
    state = train_base_chunk(photo_dir, tmp_path / "run", config=_chunk_config(2), time_budget=25,
                             init=init, log=logs.append)
    assert state["init"] == "init.safetensors" and state["step"] == 2
    assert any("weights from" in line and "init.safetensors" in line for line in logs)
    with pytest.raises(ValueError, match="complete"):
        train_base_chunk(photo_dir, tmp_path / "run", config=_chunk_config(2), time_budget=25, log=logs.append)


def test_chunk_learning_rate_rewarms_after_a_resume_and_follows_one_cosine() -> None:
    from air_restore.core.training.chunks import chunk_lr

    cfg = TrainBaseConfig(lr=1e-3, warmup=10, rewarm=4, steps=100, model=TINY)
    assert chunk_lr(0, 0, cfg) == pytest.approx(_lr_at(0, 100, cfg))  # the run's own warm-up first
    assert chunk_lr(50, 0, cfg) == pytest.approx(_lr_at(50, 100, cfg) / 4)  # a resumed chunk rewarms
    assert chunk_lr(53, 3, cfg) == pytest.approx(_lr_at(53, 100, cfg))
    assert chunk_lr(60, 10, cfg) == pytest.approx(_lr_at(60, 100, cfg))  # then the one cosine schedule

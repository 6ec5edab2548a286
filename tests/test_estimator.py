"""The tiny estimator: shapes, size, training signal, and its file refusing another adapter set."""

from __future__ import annotations

import json

import pytest
import torch

from air_restore.core.estimator import Estimator, EstimatorConfig, estimator_batch, views
from air_restore.registry.discovery import get_degradation
from air_restore.core.io.weights import ModelFileError, load_estimator, save_estimator

NAMES = ("noise", "blur", "haze", "rain", "lowlight")


def test_views_and_output_shapes():
    x = torch.rand(3, 3, 100, 150)
    v = views(x, 64)
    assert v.shape == (6, 3, 64, 64)
    assert torch.equal(v[3:], x[:, :, 18:82, 43:107])  # native-resolution centre crops
    est = Estimator(config=EstimatorConfig(adapters=NAMES))
    assert est(x).shape == (3, 5)
    w = est.weights(torch.rand(1, 3, 40, 30))  # smaller than the view: resized, not an error
    assert w.shape == (1, 5) and bool(((w >= 0) & (w <= 1)).all())
    assert sum(p.numel() for p in est.parameters()) <= 500_000


def test_estimator_batch_targets_match_degradations():
    synths = [get_degradation(n).synthesize for n in NAMES]
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(8, 3, 32, 32) * 0.5 + 0.25
    x, y = estimator_batch(clean, synths, g, p_mix=0.5)
    assert x.shape == clean.shape and y.shape == (8, 5)
    assert bool((y.sum(1) >= 1).all()) and bool((y.sum(1) <= 2).all())
    assert bool(((x - clean).abs().flatten(1).amax(1) > 0).all())  # every image was degraded


def test_a_few_steps_learn_noise_from_lowlight():
    """Real signal: a few dozen steps separate two very different degradations."""
    synths = [get_degradation(n).synthesize for n in ("noise", "lowlight")]
    g = torch.Generator().manual_seed(1)
    from skimage import data

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    est = Estimator(config=EstimatorConfig(adapters=("noise", "lowlight"), width=8))
    opt = torch.optim.Adam(est.parameters(), lr=3e-3)
    for _ in range(60):
        x, y = estimator_batch(photo[None].repeat(8, 1, 1, 1), synths, g, p_mix=0.0)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(est(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = estimator_batch(photo[None].repeat(16, 1, 1, 1), synths, g, p_mix=0.0)
    acc = (est.weights(x).argmax(1) == y.argmax(1)).float().mean().item()
    assert acc >= 0.9


def test_estimator_file_refuses_another_adapter_set(tmp_path):
    est = Estimator(config=EstimatorConfig(adapters=NAMES, width=8))
    path = tmp_path / "estimator.safetensors"
    save_estimator(est, path, metrics={"top1": 0.5})
    loaded = load_estimator(path, NAMES)
    x = torch.rand(2, 3, 80, 80)
    assert torch.equal(loaded(x), est.eval()(x))
    for other in (NAMES[:4], NAMES[::-1], NAMES + ("snow",)):
        with pytest.raises(ModelFileError, match="air train estimator"):
            load_estimator(path, other)
    with pytest.raises(ModelFileError, match="no such estimator"):
        load_estimator(tmp_path / "missing.safetensors", NAMES)
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelFileError, match="not a readable estimator"):
        load_estimator(tmp_path / "bad.safetensors", NAMES)


def test_cli_train_estimator(tmp_path):
    from PIL import Image
    from skimage import data
    from typer.testing import CliRunner

    from air_restore.cli.main import app

    clean = tmp_path / "clean"
    clean.mkdir()
    for k in ("astronaut", "coffee"):
        Image.fromarray(getattr(data, k)()).resize((128, 112)).save(clean / f"{k}.png")
    out = tmp_path / "est.safetensors"
    runner = CliRunner()
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(out), "--adapters", "noise,haze",
                            "--steps", "3", "--batches", "2"])
    assert r.exit_code == 0, r.output
    assert load_estimator(out, ("noise", "haze")).config.adapters == ("noise", "haze")
    from safetensors import safe_open

    def training_of(path):
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["training"])

    training = training_of(out)
    assert training["targets"] == "judged by restoration" and training["p_clean"] == 0.15
    # Judging needs the adapters installed: snow has a synthesizer but no installed adapter.
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(tmp_path / "s"),
                            "--adapters", "noise,snow", "--steps", "1", "--batches", "1"])
    assert r.exit_code == 2 and "snow" in r.output and "--targets present" in r.output
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(tmp_path / "s"),
                            "--adapters", "noise,snow", "--steps", "1", "--batches", "1", "--targets", "present"])
    assert r.exit_code == 0, r.output
    assert training_of(tmp_path / "s")["targets"] == "degradations present"
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.output
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(tmp_path / "e2"),
                            "--adapters", "noise,snowstorm"])
    assert r.exit_code == 2 and "snowstorm" in r.output


def test_the_pool_holds_clean_crops_with_every_target_off():
    """--clean-share: a share of the estimator's examples are clean photos whose targets are all 0."""
    from skimage import data

    from air_restore.core.training.estimator import Source, build_pool
    from air_restore.core.degradations import noise

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    sources = [Source(synth=noise), Source(synth=noise)]
    none = build_pool([photo], sources, torch.Generator().manual_seed(0), batches=4, batch_size=8)
    assert all(t.sum(1).min() >= 1 for _, t in none)  # without it, every example has some degradation
    pool = build_pool([photo], sources, torch.Generator().manual_seed(0), batches=4, batch_size=8, p_clean=0.5)
    targets = torch.cat([t for _, t in pool])
    clean = targets.sum(1) == 0
    assert 4 <= int(clean.sum()) <= 28
    views = torch.cat([v for v, _ in pool])
    assert views.dtype == torch.uint8 and views.shape[0] == 32


def test_synthesizing_the_views_reports_progress():
    """#13.8: the views are most of an estimator's training time; they must not pass in silence."""
    from air_restore.core.training.estimator import train_estimator
    from air_restore.core.degradations import noise

    photo = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(0))
    seen, steps = [], []
    train_estimator(["noise"], [noise], [photo], batches=3, steps=2, progress=lambda s, t: steps.append((s, t)),
                    pool_progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)] and steps == [(1, 2), (2, 2)]


def _bundled_restorer_and_noisy_crops():
    from skimage import data

    from air_restore.core.degradations import noise
    from air_restore.registry.pipeline import Restorer
    from air_restore.registry.store import bundled_adapters
    from air_restore.registry.store import load_base

    r = Restorer(*load_base())
    for a in bundled_adapters():
        r.attach_folder(a.path)
    photos = [torch.from_numpy(im[::2, ::2][:96, :96].copy()).permute(2, 0, 1).float() / 255
              for im in (data.astronaut(), data.chelsea(), data.coffee())]
    clean = torch.stack(photos)
    noisy = noise(clean, torch.Generator().manual_seed(3), 0.8).clamp(0, 1)
    return r, clean, noisy


def test_targets_judged_by_restoration_pick_the_best_subset_of_what_is_present():
    """#14: the estimator learns the adapters that restore a crop best (the base alone included), not
    every degradation present. Checked against restoring each candidate directly with the shipped weights."""
    from air_restore.core.metrics import psnr

    r, clean, noisy = _bundled_restorer_and_noisy_crops()
    k = len(r.adapters)
    i_noise, i_haze = r.adapters.index("noise"), r.adapters.index("haze")
    present = torch.zeros(3, k)
    present[:, [i_noise, i_haze]] = 1  # haze is claimed present but is not there
    targets = r.best_subsets(noisy, clean, present, keep_db=0.0)
    assert bool((targets <= present).all())  # never an adapter for a degradation that is not present

    def score(i: int, on: list[int]) -> float:
        w = torch.zeros(k)
        w[on] = 1
        return psnr(r.restore(noisy[i], w).image, clean[i]).item()

    for i in range(3):
        chosen = targets[i].nonzero().flatten().tolist()
        for other in ([], [i_noise], [i_haze], [i_noise, i_haze]):
            assert score(i, chosen) >= score(i, other) - 1e-3
    assert bool(targets[:, i_noise].all())  # heavy noise: the noise adapter helps on every crop
    # A credit no adapter can earn leaves the base alone; one no adapter can lose keeps all present on.
    assert not r.best_subsets(noisy, clean, present, keep_db=-100.0).any()
    assert torch.equal(r.best_subsets(noisy, clean, present, keep_db=100.0), present)


def test_the_pool_can_take_judged_targets():
    from skimage import data

    from air_restore.core.training.estimator import Source, build_pool
    from air_restore.core.degradations import haze, noise

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    seen = []

    def judge(degraded, clean, present):
        seen.append((degraded.shape, clean.shape, present.clone()))
        return torch.zeros_like(present)  # e.g. the base alone is best everywhere

    sources = [Source(synth=noise), Source(synth=haze)]
    pool = build_pool([photo], sources, torch.Generator().manual_seed(0), batches=3, batch_size=6, p_clean=0.3,
                      judge=judge, judge_size=48)
    assert not torch.cat([t for _, t in pool]).any()
    assert len(seen) == 3 and all(d[1:] == (3, 48, 48) and c == d for d, c, _ in seen)
    assert all(bool((p.sum(1) >= 1).all()) for _, _, p in seen)  # clean crops are not judged

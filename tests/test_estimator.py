"""The tiny estimator: shapes, size, training signal, and its file refusing another adapter set."""

from __future__ import annotations

import json

import pytest
import torch

from air_restore.core.estimator import Estimator, EstimatorConfig, crop_grid, estimator_batch, views
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
    small = torch.rand(1, 3, 40, 30)
    w = est.weights(small)  # smaller than the view: resized, not an error
    assert w.shape == (1, 5) and torch.equal(w, torch.sigmoid(est(small)))
    assert sum(p.numel() for p in est.parameters()) <= 500_000


def test_the_crop_grid_covers_the_image_evenly_and_is_thinned_to_its_cap():
    ys, xs = crop_grid(321, 481, 160, 64)
    assert ys == [0, 80, 161] and xs == [0, 107, 214, 321]  # ceil(321/160) × ceil(481/160), borders touched
    covered = torch.zeros(321, 481, dtype=torch.bool)
    for y in ys:
        for x in xs:
            covered[y : y + 160, x : x + 160] = True
    assert bool(covered.all())
    ys, xs = crop_grid(3000, 4000, 160, 64)  # 19 × 25 crops would cover it: thinned alike on both axes
    assert len(ys) * len(xs) <= 64 and (len(ys), len(xs)) == (6, 9)
    assert ys[0] == 0 and ys[-1] == 3000 - 160 and xs[-1] == 4000 - 160
    assert crop_grid(3000, 4000, 160, 1) == ([1420], [1920])  # one crop: the centre one


def test_a_large_image_is_judged_on_its_crops_for_sparse_degradations_only():
    torch.manual_seed(0)
    est = Estimator(config=EstimatorConfig(adapters=(*NAMES, "snow", "underwater"), crop=96, strength=True))
    assert est.config.on_crops == ("rain", "snow")
    with torch.no_grad():
        est.head[2].weight.mul_(100)  # an untrained head says about 0.5 to anything: make it tell images apart
    whole = Estimator(config=est.config.model_copy(update={"crop": 0}))
    whole.load_state_dict(est.state_dict())
    x = torch.rand(2, 3, 200, 300)
    x[1] *= 0.2  # two different images in one batch keep their own weights
    w, s = est.predict(x)
    ys, xs = crop_grid(200, 300, 96, 64)
    logits = torch.stack([whole(x[:, :, y : y + 96, x0 : x0 + 96]) for y in ys for x0 in xs])
    w_whole, s_whole = whole.predict(x)
    local, light = [3, 5], [0, 1, 2, 4, 6]  # rain, snow | noise, blur, haze, lowlight, a third party's
    torch.testing.assert_close(w[:, local], torch.sigmoid(logits.mean(0))[:, local])  # the mean logit
    torch.testing.assert_close(w[:, light], w_whole[:, light])
    torch.testing.assert_close(s, s_whole)
    assert not torch.allclose(w[:, local], w_whole[:, local], atol=1e-3)  # not one pair of views of the whole
    small = x[:, :, :96, :150]  # a side within the crop: one pair of views of the whole image, as before
    torch.testing.assert_close(est.predict(small)[0], whole.predict(small)[0])


def test_crops_that_disagree_are_pooled_by_their_mean_logit():
    """A lone crop sure of snow among crops sure there is none (a lookalike texture in one corner of a clean
    photo) is outvoted by the mean logit, where the mean weight would keep a fifth of it; crops that all lean
    one way keep that lean. ``crop_pool="prob"`` is the mean weight."""

    class Bright(Estimator):  # snow's logit rises with a crop's brightness: 12 crops, each told apart
        def forward(self, x):
            out = torch.zeros(len(x), len(self.config.adapters))
            out[:, 1] = 100 * (x.mean((1, 2, 3)) - 0.5)
            return out

    cfg = EstimatorConfig(adapters=("noise", "snow"), crop=96)
    x = torch.full((1, 3, 200, 300), 0.4)  # every crop says no snow (logit −10)...
    x[:, :, :52, :68] = 1.0  # ...but the corner one, sure of it (+13; no other crop sees that corner)
    ys, xs = crop_grid(200, 300, 96, 64)
    logits = torch.stack([100 * (x[:, :, y : y + 96, x0 : x0 + 96].mean() - 0.5) for y in ys for x0 in xs])
    assert int((logits > 0).sum()) == 1 and len(logits) == 12
    logit, prob = Bright(config=cfg), Bright(config=cfg.model_copy(update={"crop_pool": "prob"}))
    torch.testing.assert_close(logit.predict(x)[0][0, 1], torch.sigmoid(logits.mean()))
    torch.testing.assert_close(prob.predict(x)[0][0, 1], torch.sigmoid(logits).mean())
    assert float(logit.predict(x)[0][0, 1]) < 0.01 and float(prob.predict(x)[0][0, 1]) > 0.08  # ≈ 1/12
    x[:, :, 96:, :] = 0.7  # the lower half is snowy too: now most crops say snow
    assert float(logit.predict(x)[0][0, 1]) > 0.9


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


def test_keep_inherited_trains_only_the_new_output():
    """``keep_inherited``: warm-started with one more output, only that output learns; the tower, the hidden
    layer, the old outputs and the strength stay bit-identical, so old photos keep their weights."""
    from skimage import data

    from air_restore.core.training.estimator import train_estimator

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    noise, lowlight, haze = (get_degradation(n).synthesize for n in ("noise", "lowlight", "haze"))
    old, _ = train_estimator(["noise", "lowlight"], [noise, lowlight], [photo], batches=2, steps=3, seed=0)
    new, info = train_estimator(["noise", "lowlight", "haze"], [noise, lowlight, haze], [photo], batches=4,
                                steps=40, seed=1, init=old, keep_inherited=True)
    assert info["fresh_outputs"] == ["haze"] and info["kept_inherited"]
    o, n = old.state_dict(), new.state_dict()
    for key in o:
        if key.startswith("head.2."):
            assert torch.equal(n[key][:2], o[key]), key
        else:
            assert torch.equal(n[key], o[key]), key
    x = haze(photo[None], torch.Generator().manual_seed(5), 0.8).clamp(0, 1)
    assert torch.equal(new.weights(x)[:, :2], old.weights(x))  # the old outputs, exactly
    moved, _ = train_estimator(["noise", "lowlight", "haze"], [noise, lowlight, haze], [photo], batches=4,
                               steps=40, seed=1, init=old)
    assert not torch.equal(moved.state_dict()["tower.0.weight"], o["tower.0.weight"])  # without it all learn


def test_distill_keeps_the_old_views_routing_while_everything_learns():
    """``distill``: retrained whole with one more output, the old outputs on photos of the old degradations
    stay closer to the old estimator's than a plain warm-started retraining leaves them, and the new output
    still learns its degradation."""
    from skimage import data

    from air_restore.core.training.estimator import train_estimator

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    noise, lowlight, haze = (get_degradation(n).synthesize for n in ("noise", "lowlight", "haze"))
    old, _ = train_estimator(["noise", "lowlight"], [noise, lowlight], [photo], batches=4, steps=60, seed=0)
    olds = [s(photo[None], torch.Generator().manual_seed(i), 0.7).clamp(0, 1)
            for i, s in enumerate([noise, lowlight, noise, lowlight])]
    hazy = haze(photo[None], torch.Generator().manual_seed(9), 0.8).clamp(0, 1)
    drift = {}
    for distill in (False, True):
        new, info = train_estimator(["noise", "lowlight", "haze"], [noise, lowlight, haze], [photo], batches=6,
                                    steps=150, seed=1, init=old, distill=distill)
        assert info["distilled"] is distill
        drift[distill] = max(float((new.weights(x)[:, :2] - old.weights(x)).abs().max()) for x in olds)
        assert float(new.weights(hazy)[0, 2]) > 0.9 > max(float(new.weights(x)[0, 2]) for x in olds)
    assert drift[True] < 0.5 * drift[False], drift
    assert not torch.equal(new.state_dict()["tower.0.weight"], old.state_dict()["tower.0.weight"])
    with pytest.raises(ValueError, match="choose one"):
        train_estimator(["noise"], [noise], [photo], batches=1, steps=1, init=old, distill=True, keep_inherited=True)


def test_distill_with_dark_scenes_teaches_them_and_keeps_every_other_views_routing():
    """``distill`` and ``p_dark`` with the same outputs as ``init``: a dark scene (nothing wrong with it) is
    taught to switch low light off, while photos of the degradations keep the weights ``init`` gives them
    (closer than a plain warm-started retraining with dark scenes leaves them)."""
    from skimage import data

    from air_restore.core.families import expose
    from air_restore.core.training.estimator import train_estimator

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    noise, lowlight = (get_degradation(n).synthesize for n in ("noise", "lowlight"))
    names, synths = ["noise", "lowlight"], [noise, lowlight]
    old, _ = train_estimator(names, synths, [photo], batches=4, steps=60, seed=0)
    olds = [s(photo[None], torch.Generator().manual_seed(i), 0.7).clamp(0, 1)
            for i, s in enumerate([noise, lowlight, noise, lowlight])]
    scene = expose(photo[None], 0.3)
    drift, dark = {}, {}
    for distill in (False, True):
        new, info = train_estimator(names, synths, [photo], batches=6, steps=150, seed=1, init=old, distill=distill,
                                    p_dark=0.5, p_clean=0.3)
        assert info["distilled"] is distill and info["p_dark"] == 0.5
        drift[distill] = max(float((new.weights(x) - old.weights(x)).abs().max()) for x in olds)
        dark[distill] = float(new.weights(scene)[0, 1])
    assert dark[True] < 0.5 * float(old.weights(scene)[0, 1]), (dark, float(old.weights(scene)[0, 1]))
    assert drift[True] < 0.5 * drift[False], drift
    # dark_keep: a darker scene under-exposed by low light stays low light, whatever the judge says of it.
    darker = [lowlight(expose(photo[None], 0.4), torch.Generator().manual_seed(i), 0.3).clamp(0, 1) for i in range(3)]
    off = lambda degraded, clean, present: torch.zeros_like(present)  # noqa: E731  (judges every view: nothing helps)
    kept = {}
    for keep in ((), ("lowlight",)):
        new, info = train_estimator(names, synths, [photo], batches=6, steps=150, seed=1, init=old, distill=True,
                                    p_dark=0.5, judge=off, dark_keep=keep)
        kept[keep] = min(float(new.weights(x)[0, 1]) for x in darker)
        assert info.get("dark_keep", []) == list(keep)
    assert kept[("lowlight",)] > 0.9 and kept[()] < 0.6, kept


def test_distill_relearns_an_output_whose_adapter_was_trained_again():
    """``relearn`` (``air add-degradation --overwrite``): an output the old estimator has is taught as a new
    one (its old values are not distilled), so it follows the new adapter's degradation."""
    from skimage import data

    from air_restore.core.training.estimator import train_estimator

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    noise, haze, lowlight = (get_degradation(n).synthesize for n in ("noise", "haze", "lowlight"))
    old, _ = train_estimator(["noise", "fog"], [noise, haze], [photo], batches=4, steps=60, seed=0)
    dark = lowlight(photo[None], torch.Generator().manual_seed(3), 0.8).clamp(0, 1)
    fog = {}
    for relearn in ((), ("fog",)):  # "fog" retrained on dark photos instead of hazy ones
        new, info = train_estimator(["noise", "fog"], [noise, lowlight], [photo], batches=6, steps=150, seed=1,
                                    init=old, distill=True, relearn=relearn)
        assert info["distilled"]
        fog[relearn] = float(new.weights(dark)[0, 1])
    assert fog[("fog",)] > 0.8 and fog[()] < 0.5 * fog[("fog",)], fog


def test_keep_reads_the_old_outputs_from_the_old_estimator_exactly(tmp_path):
    """core.estimator.keep (``air add-degradation --estimator-update keep``): the new estimator answers for its new
    output, the old one, travelling in the same file, for the outputs it had, exactly as it gave them, on whole
    photos and on a large photo's crops alike; a warm start from it takes the new estimator's own tower."""
    from air_restore.core.estimator import keep
    from air_restore.core.io.weights import read_estimator

    torch.manual_seed(0)
    old = Estimator(config=EstimatorConfig(adapters=("noise", "rain"))).eval()
    new = Estimator(config=EstimatorConfig(adapters=("noise", "rain", "snow"))).eval()
    both = keep(new, old, ["noise", "rain"])
    x = torch.rand(3, 3, 200, 360)  # over config.crop: rain and snow are judged on crops
    (w_old, _), (w_new, _), (w, _) = old.predict(x), new.predict(x), both.predict(x)
    assert torch.equal(w[:, :2], w_old) and torch.equal(w[:, 2], w_new[:, 2])
    assert not torch.allclose(w_new[:, :2], w_old)  # the two estimators do differ there
    save_estimator(both, tmp_path / "e.safetensors")
    back = read_estimator(tmp_path / "e.safetensors")
    assert back.config.kept == ("noise", "rain") and torch.equal(back.predict(x)[0], w)
    assert back.config.kept_from.adapters == ("noise", "rain")

    warm = Estimator(config=EstimatorConfig(adapters=("noise", "rain", "snow", "sleet")))
    assert warm.inherit(both) == ["sleet"]
    assert torch.equal(warm.tower[0].weight, new.tower[0].weight)
    assert torch.equal(warm.head[2].weight[:3], new.head[2].weight)

    with pytest.raises(ValueError, match="see photos differently"):
        keep(new, Estimator(config=EstimatorConfig(adapters=("noise", "rain"), view=32)), ["noise"])
    with pytest.raises(ValueError, match="kept outputs"):
        keep(new, old, ["snow"])  # the old estimator has no snow output


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


@pytest.fixture
def sepia_plugin(tmp_path, monkeypatch):
    """The example third-party plugin (tests/plugin_package: a synthesizer, no adapter anywhere) made importable with
    its entry point, as `pip install` would: the package and a dist-info folder on sys.path."""
    import shutil
    from pathlib import Path

    from air_restore.registry.discovery import discover

    site = tmp_path / "site"
    shutil.copytree(Path(__file__).parent / "plugin_package" / "air_sepia", site / "air_sepia")
    info = site / "air_sepia-0.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: air-sepia\nVersion: 0.2.0\n")
    (info / "entry_points.txt").write_text("[air_restore.plugins]\nsepia = air_sepia:sepia\n")
    monkeypatch.syspath_prepend(str(site))
    discover.cache_clear()
    yield "sepia"
    discover.cache_clear()


def test_cli_train_estimator(tmp_path, sepia_plugin):
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
    # Not a terminal (a log file): the progress bars also print plain lines, not only a bar at the end.
    assert "synthesizing views and judging them by restoration: 2/2" in r.output and "training estimator: 3/3" in r.output
    assert load_estimator(out, ("noise", "haze")).config.adapters == ("noise", "haze")
    from safetensors import safe_open

    def training_of(path):
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["training"])

    training = training_of(out)
    assert training["targets"] == "judged by restoration" and training["p_clean"] == 0.15
    assert training["p_dark"] == 0.0  # dark scenes are opt-in (--dark-share), recorded in the file
    # Judging needs the adapters installed: a third party's plugin has a synthesizer but no installed adapter.
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(tmp_path / "s"),
                            "--adapters", f"noise,{sepia_plugin}", "--steps", "1", "--batches", "1"])
    assert r.exit_code == 2 and sepia_plugin in r.output and "--targets present" in r.output
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(tmp_path / "s"),
                            "--adapters", f"noise,{sepia_plugin}", "--steps", "1", "--batches", "1", "--targets",
                            "present", "--family"])
    assert r.exit_code == 0, r.output
    assert training_of(tmp_path / "s")["targets"] == "degradations present"
    assert training_of(tmp_path / "s")["data"]["family"] == "adapter" and "family" not in training["data"]
    assert not load_estimator(out, ("noise", "haze")).config.strength  # the strength output is opt-in
    # --family-of: only the adapters named see their family (rain: its streaks, then JPEG on half the crops).
    common = ["train", "estimator", "--clean", str(clean), "--adapters", "noise,rain", "--steps", "2", "--batches", "2",
              "--targets", "present"]
    for name, extra in (("plain", []), ("rainfam", ["--family-of", "rain"]), ("dark", ["--dark-share", "0.5"])):
        r = runner.invoke(app, [*common, *extra, "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    assert training_of(tmp_path / "rainfam")["data"]["family"] == "adapter: rain"
    assert training_of(tmp_path / "dark")["p_dark"] == 0.5
    # --init --distill: starts from an estimator for the same adapters and records where it started.
    r = runner.invoke(app, [*common, "--dark-share", "0.5", "--dark-floor", "0.4", "--init", str(tmp_path / "plain"),
                            "--distill", "--dark-clean-only", "--out", str(tmp_path / "kept")])
    assert r.exit_code == 0, r.output
    kept = training_of(tmp_path / "kept")
    assert kept["distilled"] and kept["warm_start"] and kept["data"]["init"] == "plain" and kept["dark_floor"] == 0.4
    assert kept["dark_keep"] == ["noise", "rain"]  # --dark-clean-only: no degraded view is a dark lesson
    assert training_of(tmp_path / "dark")["dark_floor"] == 0.25 and "dark_floor" not in training
    for extra, words in ((["--distill"], "--init"), (["--init", str(tmp_path / "plain"), "--distill"], "--dark-share"),
                         (["--dark-share", "0.5", "--dark-clean-only"], "give --distill"),
                         (["--init", str(out), "--dark-share", "0.5"], "not for noise,rain")):
        r = runner.invoke(app, [*common, *extra, "--out", str(tmp_path / "bad")])
        assert r.exit_code == 2 and words in r.output and not (tmp_path / "bad").exists(), r.output
    plain, rainfam = (load_estimator(tmp_path / n, ("noise", "rain")) for n in ("plain", "rainfam"))
    # Same seed, other rain views: the trained weights differ.
    assert any(not torch.equal(a, b) for a, b in zip(plain.state_dict().values(), rainfam.state_dict().values()))
    for extra, words in ((["--family-of", "haze"], "not among"), (["--family-of", "rain", "--family"], "not both")):
        r = runner.invoke(app, [*common, *extra, "--out", str(tmp_path / "bad")])
        assert r.exit_code == 2 and words in r.output and not (tmp_path / "bad").exists()
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(tmp_path / "st"),
                            "--adapters", "noise,haze", "--steps", "2", "--batches", "1", "--strength"])
    assert r.exit_code == 0, r.output
    assert load_estimator(tmp_path / "st", ("noise", "haze")).config.strength
    r = runner.invoke(app, ["train", "estimator", "--clean", str(clean), "--out", str(tmp_path / "sp"),
                            "--adapters", "noise", "--steps", "1", "--batches", "1", "--strength",
                            "--targets", "present"])
    assert r.exit_code == 2 and "--targets restored" in r.output and not (tmp_path / "sp").exists()
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


def test_the_pool_shows_detected_degradations_with_every_output_off():
    """``others`` (JPEG, which a rule weights): crops degraded by them, every target 0, no strength lesson
    (strength 1 at cost 0), never judged; the sources' samples are unchanged in kind."""
    from skimage import data

    from air_restore.core.training.estimator import Source, build_pool
    from air_restore.core.degradations import noise

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    grey = lambda x, g, sev: x.mean(1, keepdim=True).expand_as(x)  # an unmistakable "other" degradation
    judged = []

    def judge(degraded, clean, present):
        judged.append(len(degraded))
        return torch.cat([present, torch.ones(len(present), 1), torch.full((len(present), 1), 0.5)], 1)

    pool = build_pool([photo], [Source(synth=noise), Source(synth=noise)], torch.Generator().manual_seed(0),
                      batches=4, batch_size=8, others=[grey], p_other=0.5, judge=judge, strength=True)
    views = torch.cat([v for v, _ in pool]).float()
    t = torch.cat([y for _, y in pool])
    grey_views = (views.amax(2) - views.amin(2)).flatten(1).amax(1) == 0  # R = G = B everywhere
    assert 4 <= int(grey_views.sum()) <= 28
    assert bool((t[grey_views, :2] == 0).all()) and bool((t[grey_views, 2:] == torch.tensor([1.0, 0.0])).all())
    assert bool((t[~grey_views, :2].sum(1) >= 1).all()) and bool((t[~grey_views, 3] == 0.5).all())
    assert sum(judged) == int((~grey_views).sum())


def test_the_pool_stacks_detected_degradations_last_keeping_the_targets():
    """``p_other_stacked``: a share of the sources' samples also get an ``others`` degradation last (a dark
    photo saved as a JPEG), and keep their sources' targets; the judge sees them so. At 0 the pool is the
    same draw for draw as without it."""
    from skimage import data

    from air_restore.core.training.estimator import Source, build_pool
    from air_restore.core.degradations import lowlight, noise

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    grey = lambda x, g, sev: x.mean(1, keepdim=True).expand_as(x)  # noqa: E731  (unmistakable in a view)
    seen = []

    def judge(degraded, clean, present):
        seen.append((degraded.amax(1) - degraded.amin(1)).flatten(1).amax(1) == 0)  # grey crops judged as grey
        return present

    def pool(**kw):
        return build_pool([photo], [Source(synth=noise), Source(synth=lowlight)], torch.Generator().manual_seed(0),
                          batches=4, batch_size=8, others=[grey], **kw)

    plain, zero = pool(p_other=0.25), pool(p_other=0.25, p_other_stacked=0.0)
    assert all(torch.equal(a, b) and torch.equal(x, y) for (a, x), (b, y) in zip(plain, zero))
    stacked = pool(p_other=0.0, p_other_stacked=0.5, judge=judge)
    views = torch.cat([v for v, _ in stacked]).float()
    t = torch.cat([y for _, y in stacked])
    grey_views = (views.amax(2) - views.amin(2)).flatten(1).amax(1) == 0
    assert 4 <= int(grey_views.sum()) <= 28  # about half, and every one kept its source's target
    assert bool((t.sum(1) >= 1).all())
    assert torch.equal(torch.cat(seen), grey_views)


def test_the_pool_exposes_real_photos_down_and_counts_them_as_the_exposure_cut():
    """``p_exposed``: a share of the crops of real degraded photos goes through an exposure source, made by
    both then, with the exposure cut's target alone: the same camera's noise with less light is low light.
    At 0, or with no exposure source, the pool is the same draw for draw as without it."""
    from air_restore.core.training.estimator import Source, build_pool

    photo = torch.full((3, 160, 160), 0.6)
    halve = lambda x, g, sev: x * 0.5  # noqa: E731
    made: list[torch.Tensor] = []

    def pool(**kw):
        return build_pool([photo], [Source(synth=halve), Source(degraded=[photo])], torch.Generator().manual_seed(0),
                          batches=4, batch_size=8, source_weights=[0, 1], **kw)

    plain = pool()
    for kw in ({"p_exposed": 0.0, "exposure": [0]}, {"p_exposed": 0.5, "exposure": []}):
        assert all(torch.equal(a, b) and torch.equal(x, y) for (a, x), (b, y) in zip(plain, pool(**kw)))
    exposed = pool(p_exposed=0.5, exposure=[0], presence=made)
    level = torch.cat([v for v, _ in exposed]).float().mean((1, 2, 3, 4)) / 255
    t, m = torch.cat([y for _, y in exposed]), torch.cat(made)
    dark = level < 0.45
    assert 4 <= int(dark.sum()) <= 28, level  # about half: 0.3, the rest as they came, 0.6
    assert torch.allclose(level[dark], torch.tensor(0.3), atol=0.01)
    assert torch.allclose(level[~dark], torch.tensor(0.6), atol=0.01)
    assert torch.equal(t, torch.stack([dark, ~dark], 1).float())  # the exposure cut's target alone
    assert torch.equal(m, torch.stack([dark, torch.ones_like(dark)], 1))  # made from both


def test_the_pool_shows_clean_versions_of_real_pairs_with_every_target_off():
    """``p_pair_clean``: a share of a real-pairs source's draws shows a crop of a clean version (a stored clean
    view), every target off and made by no source, so the estimator learns the degradation, not the photos'
    scenes. At 0, or for a source without clean versions, the pool is the same draw for draw."""
    from air_restore.core.training.estimator import Source, build_pool

    degraded, clean = torch.full((3, 160, 160), 0.6), torch.full((3, 160, 160), 0.2)
    stored = torch.full((5, 2, 3, 64, 64), 150, dtype=torch.uint8)
    made: list[torch.Tensor] = []

    def pool(source, **kw):
        return build_pool([degraded], [Source(synth=lambda x, g, sev: x), source], torch.Generator().manual_seed(0),
                          batches=4, batch_size=8, source_weights=[0, 1], **kw)

    plain = pool(Source(degraded=[degraded]))
    for other in (pool(Source(degraded=[degraded]), p_pair_clean=0.5), pool(Source(degraded=[degraded], clean=[clean]))):
        assert all(torch.equal(a, b) and torch.equal(x, y) for (a, x), (b, y) in zip(plain, other))
    for src in (Source(degraded=[degraded], clean=[clean]), Source(views=stored, clean_views=stored // 3)):
        mixed = pool(src, p_pair_clean=0.5, presence=made)
        level = torch.cat([v for v, _ in mixed]).float().mean((1, 2, 3, 4)) / 255
        t, m = torch.cat([y for _, y in mixed]), torch.cat(made[-4:])
        shown = level < 0.4  # a clean version: 0.2 (50/255 for the stored ones), the degraded photo 0.6 (150/255)
        assert 4 <= int(shown.sum()) <= 28, level  # about half
        assert torch.equal(t[:, 1], (~shown).float()) and not t[:, 0].any()
        assert torch.equal(m[:, 1], ~shown) and not m[:, 0].any()


def test_the_pool_shows_dark_scenes_whose_clean_version_is_as_dark():
    """``p_dark``: a crop exposed down before it is degraded, and judged against that darker crop (a dim
    scene, not low light), so a well-exposed dark photo is not taught to be brightened. At 0 the pool is
    exactly the one made without it."""
    from air_restore.core.training.estimator import Source, build_pool

    photo = torch.full((3, 160, 160), 0.5)
    same = lambda x, g, sev: x  # degraded = clean: what the judge gets shows what the crop was
    seen = []

    def judge(degraded, clean, present):
        seen.append((degraded, clean))
        return present

    kw = dict(batches=3, batch_size=8, p_clean=0.25, judge=judge, judge_size=48)
    dark = build_pool([photo], [Source(synth=same)], torch.Generator().manual_seed(0), p_dark=1.0, **kw)
    degraded = torch.cat([d for d, _ in seen])
    clean = torch.cat([c for _, c in seen])
    assert torch.equal(degraded, clean.mul(255).round().div(255))  # degraded from the darker crop itself
    assert bool((clean.flatten(1).amax(1) < 0.5).all())  # every crop darker, clean crops too:
    assert bool((torch.cat([v for v, _ in dark]).float().flatten(1).amax(1) < 128).all())
    assert clean.flatten(1).mean(1).min() < 0.3  # down to a quarter of the light: 0.5 → 0.28 in sRGB
    seen.clear()
    build_pool([photo], [Source(synth=same)], torch.Generator().manual_seed(0), p_dark=1.0, dark_floor=0.9, **kw)
    means = torch.cat([c for _, c in seen]).flatten(1).mean(1)
    assert bool((means < 0.5).all()) and means.min() > 0.47  # a floor of 0.9: 0.5 → at least 0.477 in sRGB
    seen.clear()
    plain = build_pool([photo], [Source(synth=same)], torch.Generator().manual_seed(0), **kw)
    zero = build_pool([photo], [Source(synth=same)], torch.Generator().manual_seed(0), p_dark=0.0, **kw)
    assert all(torch.equal(a, b) and torch.equal(s, t) for (a, s), (b, t) in zip(plain, zero))
    assert bool((torch.cat([v for v, _ in plain]) == 128).all())
    marks = []  # which samples were exposed down: exactly those whose views are darker than the flat grey
    half = build_pool([photo], [Source(synth=same)], torch.Generator().manual_seed(0), p_dark=0.5, darkened=marks,
                      **kw)
    views, marked = torch.cat([v for v, _ in half]), torch.cat(marks)
    assert torch.equal(views.flatten(1).amax(1) < 128, marked) and 0 < int(marked.sum()) < len(marked)
    again = build_pool([photo], [Source(synth=same)], torch.Generator().manual_seed(0), p_dark=0.5, **kw)
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(half, again))  # recording draws nothing
    marks.clear()  # crops of `others` are darkened too but are no dark-scene lesson (their targets are all 0)
    other = build_pool([photo], [Source(synth=same)], torch.Generator().manual_seed(0), batches=2, batch_size=8,
                       others=[same], p_other=1.0, p_dark=1.0, darkened=marks)
    assert bool((torch.cat([v for v, _ in other]).flatten(1).amax(1) < 128).all()) and not torch.cat(marks).any()


def test_source_weights_set_how_often_each_degradation_is_drawn():
    """How often the estimator sees each degradation (measured for add-degradation: a new one drawn twice as often; NOTES.md)."""
    from air_restore.core.training.estimator import Source, build_pool
    from air_restore.core.degradations import noise

    photo = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(0))
    sources = [Source(synth=noise), Source(synth=noise), Source(synth=noise)]

    def firsts(weights):
        pool = build_pool([photo], sources, torch.Generator().manual_seed(1), batches=20, batch_size=16, p_mix=0.0,
                          sizes=(64, 64), source_weights=weights)
        return torch.cat([t for _, t in pool]).sum(0)

    assert firsts([0.0, 1.0, 0.0]).tolist() == [0.0, 320.0, 0.0]
    counts = firsts([1.0, 1.0, 2.0])  # 1/4, 1/4, 1/2 of 320 samples
    assert 120 <= counts[2] <= 200 and counts[0] < counts[2] and counts[1] < counts[2], counts
    with pytest.raises(ValueError, match="source_weights"):
        firsts([1.0, 1.0])


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
    assert all(score(i, [i_noise]) > score(i, []) + 0.1 for i in range(3))  # heavy noise: the noise adapter helps
    # on every crop, and is chosen where it leads (on the coffee crop the haze adapter ties it within 0.01 dB)
    assert bool(targets[:2, i_noise].all())
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


def test_best_strength_is_the_least_squares_step_along_the_restoration():
    from air_restore.core.estimator import best_strength

    g = torch.Generator().manual_seed(0)
    clean = torch.rand(4, 3, 16, 16, generator=g)
    x = clean + 0.1 * torch.randn(4, 3, 16, 16, generator=g)
    restored = torch.stack([clean[0],                          # perfect: keep it all
                            x[1] + 2 * (clean[1] - x[1]),      # overshoots twice: half of it
                            x[2] - (clean[2] - x[2]),          # goes the wrong way: keep the input
                            x[3]])                             # changes nothing: 1 (no harm either way)
    s = best_strength(x, restored, clean)
    assert torch.allclose(s, torch.tensor([1.0, 0.5, 0.0, 1.0]), atol=1e-5)


def test_strength_output_predicts_and_inherits():
    plain = Estimator(config=EstimatorConfig(adapters=NAMES, width=8))
    x = torch.rand(2, 3, 80, 80)
    w, s = plain.predict(x)
    assert w.shape == (2, 5) and torch.equal(s, torch.ones(2))  # an estimator without the output: strength 1
    est = Estimator(config=EstimatorConfig(adapters=NAMES, width=8, strength=True))
    assert est(x).shape == (2, 6)
    w, s = est.predict(x)
    assert w.shape == (2, 5) and s.shape == (2,)
    assert torch.allclose(s, torch.sigmoid(est(x)[:, 5])) and torch.equal(est.weights(x), w)
    grown = Estimator(config=EstimatorConfig(adapters=NAMES + ("snow",), width=8, strength=True))
    assert grown.inherit(est) == ["snow"]
    assert torch.equal(grown.head[2].weight[-1], est.head[2].weight[-1])  # the strength row comes along
    assert torch.equal(grown.head[2].weight[:5], est.head[2].weight[:5])


def test_strength_targets_judged_by_restoration():
    """#14: a clean crop's strength target is 0 (the network can only lose there), heavy noise's is near 1;
    the strength column is the least-squares strength of the best subset's gated output."""
    from air_restore.core.estimator import best_strength
    from air_restore.core.metrics import psnr

    r, clean, noisy = _bundled_restorer_and_noisy_crops()
    k = len(r.adapters)
    present = torch.zeros(3, k)
    present[:, r.adapters.index("noise")] = 1
    plain = r.best_subsets(noisy, clean, present)
    targets = r.best_subsets(noisy, clean, present, strength=True)
    assert targets.shape == (3, k + 2) and torch.equal(targets[:, :k], plain)  # the subsets do not change
    assert bool((targets[:, k] > 0.8).all())
    for i in range(3):  # the target beats the full restoration and the input
        w = targets[i, :k]
        full = r.restore(noisy[i], w).image
        best = r.restore(noisy[i], w, strength=float(targets[i, k])).image
        assert psnr(best, clean[i]) >= psnr(full, clean[i]) - 1e-3
        assert psnr(best, clean[i]) > psnr(noisy[i], clean[i])
    # The cost column is the mean squared change of the judged output: heavy noise changes far more.
    for i in range(3):
        w = targets[i, :k]
        change = r.restore(noisy[i], w).image - noisy[i]
        assert torch.isclose(targets[i, k + 1], change.pow(2).mean(), rtol=0.05)
    on_clean = r.best_subsets(clean, clean, torch.zeros(3, k), strength=True)
    assert not on_clean[:, :k].any() and bool((on_clean[:, k] < 0.05).all())
    assert bool((on_clean[:, k + 1] < targets[:, k + 1] / 10).all())
    assert torch.allclose(best_strength(clean, clean, clean), torch.ones(3))


def test_the_pool_gets_a_strength_column():
    from skimage import data

    from air_restore.core.training.estimator import Source, build_pool
    from air_restore.core.degradations import noise

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255

    seen = []

    def judge(degraded, clean, present):
        assert present.shape[1] == 2
        seen.append(present.clone())
        return torch.cat([present, torch.full((len(present), 1), 0.25), torch.full((len(present), 1), 0.01)], 1)

    sources = [Source(synth=noise), Source(synth=noise)]
    with pytest.raises(ValueError, match="judge"):
        build_pool([photo], sources, torch.Generator().manual_seed(0), batches=1, strength=True)
    pool = build_pool([photo], sources, torch.Generator().manual_seed(0), batches=3, batch_size=8, p_clean=0.4,
                      judge=judge, judge_size=48, strength=True)
    t = torch.cat([y for _, y in pool])
    clean = t[:, :2].sum(1) == 0
    assert t.shape == (24, 4) and clean.any() and (~clean).any()
    assert bool((t[:, 2] == 0.25).all()) and bool((t[:, 3] == 0.01).all())  # every crop judged, clean ones too
    assert sum(len(p) for p in seen) == 24 and any(not p.any() for p in torch.cat(seen))


def test_training_learns_the_strength_where_it_costs():
    """The strength output is trained beside the weights, its error weighted by each crop's cost: here
    noisy crops must keep all of the restoration and hazy ones none; crops of cost 0 teach nothing."""
    from skimage import data

    from air_restore.core.degradations import haze, noise
    from air_restore.core.training.estimator import train_estimator

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255

    def judge(degraded, clean, present):
        noisy = present[:, :1]
        return torch.cat([present, noisy, torch.ones(len(present), 1)], 1)

    est, info = train_estimator(["noise", "haze"], [noise, haze], [photo], batches=6, steps=120, judge=judge,
                                strength=True)
    assert est.config.strength and set(info["target_means"]) == {"noise", "haze", "strength", "strength_cost"}
    g = torch.Generator().manual_seed(5)
    crops = photo[None, :, :96, :96].repeat(8, 1, 1, 1)
    _, s_noise = est.predict(noise(crops, g, 0.6).clamp(0, 1))
    _, s_haze = est.predict(haze(crops, g, 0.6).clamp(0, 1))
    assert float(s_noise.mean()) > float(s_haze.mean()) + 0.3


def test_distill_judges_only_the_views_it_teaches_and_learns_exactly_the_same(monkeypatch):
    """With ``distill``, a view made without a learning output's source is taught ``init``'s routing whatever the
    judge says of it, so ``train_estimator`` judges only the views of the new outputs' sources (and the dark
    lessons): fewer crops through the judge, the very same estimator."""
    from skimage import data

    import air_restore.core.training.estimator as E

    photo = torch.from_numpy(data.astronaut()[::4, ::4].copy()).permute(2, 0, 1).float() / 255
    noise, haze, lowlight = (get_degradation(n).synthesize for n in ("noise", "haze", "lowlight"))
    old, _ = E.train_estimator(["noise", "lowlight"], [noise, lowlight], [photo], batches=2, steps=20, seed=0)
    seen = []

    def judge(degraded, clean, present):  # on where the crop moved far enough from its clean version
        seen.append(present.clone())
        return present * ((degraded - clean).abs().mean((1, 2, 3)) > 0.08).float()[:, None]

    kw = dict(batches=6, steps=40, seed=1, init=old, distill=True, judge=judge, p_clean=0.2, p_dark=0.3)
    names, synths = ["noise", "lowlight", "haze"], [noise, lowlight, haze]
    fast, info = E.train_estimator(names, synths, [photo], **kw)
    judged_fast = torch.cat(seen)
    seen.clear()
    build_pool = E.build_pool
    monkeypatch.setattr(E, "build_pool", lambda *a, **k: build_pool(*a, **{**k, "judged_sources": None}))
    full, _ = E.train_estimator(names, synths, [photo], **kw)
    judged_full = torch.cat(seen)
    assert info["targets"] == "judged by restoration where learned (distilled elsewhere)"
    assert len(judged_fast) < 0.7 * len(judged_full), (len(judged_fast), len(judged_full))
    assert judged_fast[:, 2].sum() == judged_full[:, 2].sum() > 0  # every haze view still judged
    for (k, a), b in zip(fast.state_dict().items(), full.state_dict().values()):
        assert torch.equal(a, b), k
    # Without a teacher (no init, or every output learning) every view is judged as before.
    seen.clear()
    E.train_estimator(names, synths, [photo], **{**kw, "distill": False})
    assert len(seen) and sum(len(s) for s in seen) == len(judged_full)

"""The public Python API (README): `load_pipeline()` gives exactly what `air restore` writes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from air_restore.cli.main import app
from air_restore.registry import load_pipeline
from air_restore.registry.store import BUNDLED_ORDER

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
    assert pipe.adapters == list(BUNDLED_ORDER)


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
    with pytest.raises(KeyError, match="no active adapter named 'sleet'"):
        pipe.restore(rgb8, adapters={"sleet": 1.0})


def test_run_reports_what_it_did(pipe):
    """`Pipeline.run` is what the CLI, the page and `air batch` call: weights, who chose them, the map."""
    import torch

    rgb = torch.from_numpy(np.asarray(Image.open(EXAMPLE).convert("RGB"))[:96, :128].copy()).permute(2, 0, 1) / 255
    est = pipe.run(rgb, explain=True)
    assert est.weights_source == "estimator" and list(est.weights) == pipe.adapters
    assert est.weights["haze"] > 0.5 and est.shares["haze"] > 0.5  # a hazy photo, seen as hazy by both
    assert est.seg_probs.shape == (len(pipe.classes), 96, 128)
    assert est.degradation_map(rgb, pipe.classes).size[0] == 128
    given = pipe.run(rgb, adapters={"rain": 1.0})
    assert given.weights_source == "given" and given.seg_probs is None and given.shares is None
    assert given.weights == {n: float(n == "rain") for n in pipe.adapters} and "realnoise" in given.weights
    assert est.detected and not given.detected  # the jpeg rule measured only where the weights were not given
    assert (given.image - est.image).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="no segmentation"):
        given.degradation_map(rgb, pipe.classes)
    with pytest.raises(KeyError, match="no active adapter named 'sn0w'"):
        pipe.run(rgb, adapters={"sn0w": 1.0})


def test_a_clean_photo_comes_back_unchanged_and_a_noisy_one_is_still_restored(pipe):
    """The clean-pixel gate (on by default): a clean photo through the shipped pipeline comes back within
    40 dB of itself, far closer than the network alone gives it; a noisy photo is restored as before."""
    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import psnr, quantize8

    # chelsea: a clean photo (the astronaut is not: the base sees grain in it and gates little of it)
    clean = torch.from_numpy(np.ascontiguousarray(data.chelsea()[:256, :320])).permute(2, 0, 1).float() / 255
    gated, ungated = pipe.restorer.restore(clean).image, pipe.restorer.restore(clean, gate=False).image
    assert psnr(gated, clean, quantize=True) >= 40
    assert psnr(gated, clean, quantize=True) > psnr(ungated, clean, quantize=True) + 3
    # The head sees chelsea as clean as a whole (mean p_clean ≈ 0.85), so the gate keeps all of the input,
    # where the per-pixel gate alone still lets the network's small changes through.
    pixel = pipe.restorer.restore(clean, clean_ramp=None).image
    assert torch.equal(quantize8(gated), quantize8(clean)) and not torch.equal(quantize8(pixel), quantize8(clean))
    noisy = quantize8(D.noise(clean[None], torch.Generator().manual_seed(0), 0.5)[0])
    g, u = pipe.restorer.restore(noisy).image, pipe.restorer.restore(noisy, gate=False).image
    assert psnr(g, clean) > psnr(noisy, clean) + 5
    assert abs(psnr(g, clean) - psnr(u, clean)) < 0.1


def test_an_adapter_the_head_has_no_class_for_lifts_the_gate_by_its_weight(pipe):
    """#13/#14: the head reads a degradation it has no class for (JPEG, snow, a third-party adapter's) as clean,
    so the gate would keep those pixels and undo the adapter. Its weight lifts as much of the gate, whoever
    chose the weight (here no detection rule is in force: only the head's classes decide)."""
    import dataclasses

    import torch
    from skimage import data

    r = dataclasses.replace(pipe.restorer, detected=())
    assert [r.adapters[i] for i in r.unseen()] == ["jpeg", "snow"]  # lumanoise's floor lifts it as far as it reaches
    clean = torch.from_numpy(np.ascontiguousarray(data.chelsea()[:128, :160])).permute(2, 0, 1).float() / 255
    w = r.weights_from({"jpeg": 1.0})
    lifted, ungated = r.restore(clean, w).image, r.restore(clean, w, gate=False).image
    assert torch.allclose(lifted, ungated, atol=1e-6)
    gated = r.restore(clean, w, release=0.0).image  # the gate keeps part of this clean photo as it is
    change = lambda out: float((out - clean).abs().mean())  # noqa: E731
    assert change(gated) < 0.9 * change(ungated)
    half = r.weights_from({"jpeg": 0.5})  # half the weight lifts half the gate
    assert change(r.restore(clean, half).image) > 1.05 * change(r.restore(clean, half, release=0.0).image)


def test_the_fallback_rule(pipe):
    """core.routing: the fallback takes the unassigned weight, all of it unless the photo looks dark to the
    estimator or to the head, or clean to the head; none of it when one of them is sure."""

    from air_restore.core.routing import Fallback, fallback_share

    rule = Fallback()
    assert fallback_share(0.0, 0.0, 0.0, rule) == 1.0
    assert fallback_share(rule.est_limit, 0.0, 0.0, rule) == 0.0
    assert fallback_share(0.0, rule.head_ramp[1], 0.0, rule) == 0.0
    assert fallback_share(0.0, 0.0, 0.9, rule) == 0.0  # looks clean as a whole: the gate keeps it anyway
    assert 0 < fallback_share(0.05, 0.3, 0.0, rule) < fallback_share(0.0, 0.3, 0.0, rule) < 1
    assert 0 < fallback_share(0.0, 0.0, 0.7, rule) < 1
    assert Fallback().applies(pipe.restorer.model, list(BUNDLED_ORDER))
    assert not Fallback().applies(pipe.restorer.model, ["noise", "haze"])


def test_the_fallback_stays_off_a_veiled_photo_but_not_under_dense_fog(pipe):
    """core.routing.fallback_share: light haze lifts the photo's darkest parts (its veil), and the estimator gives it
    little weight, so the fallback would pour the rest into the noise adapter, which undoes the base's dehazing.
    The veil turns the fallback off; a dense fog (most of the dark channel above 0.7) turns it back on. On a noisy
    clear photo, which has no veil, the fallback is as it was."""
    import dataclasses

    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import psnr, quantize8
    from air_restore.core.routing import Fallback, fallback_share, fog_density, veil

    rule = Fallback()
    lo, hi = rule.veil_ramp
    assert fallback_share(0.0, 0.0, 0.0, rule, veiled=lo) == 1.0
    assert 0 < fallback_share(0.0, 0.0, 0.0, rule, veiled=(lo + hi) / 2) < 1
    assert fallback_share(0.0, 0.0, 0.0, rule, veiled=hi) == 0.0
    assert fallback_share(0.0, 0.0, 0.0, rule, veiled=hi, dense=rule.dense_ramp[1]) == 1.0
    assert fallback_share(0.0, 0.0, 0.0, dataclasses.replace(rule, veil_ramp=None), veiled=1.0) == 1.0

    on, off = (dataclasses.replace(pipe.restorer, fallback=f) for f in (rule, Fallback(veil_ramp=None)))
    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut()[:256, :256])).permute(2, 0, 1).float() / 255
    hazy = quantize8(D.haze(clean[None], torch.Generator().manual_seed(3), 0.1)[0])
    assert veil(hazy) > hi and fog_density(hazy) < rule.dense_ramp[0]
    (w_on, s_on, extra_on), (w_off, s_off, extra_off) = on.route(hazy), off.route(hazy)
    assert extra_on == 0.0 and extra_off > 0.2  # the estimator left most of the weight unassigned
    restored = [r.restore(hazy, w, strength=s, also_clean=r.also_clean(w, hazy), again=True).image
                for r, w, s in ((on, w_on, s_on), (off, w_off, s_off))]
    assert psnr(restored[0], clean) > psnr(restored[1], clean) + 0.5

    noisy = quantize8(D.noise(clean[None], torch.Generator().manual_seed(4), 0.1)[0])
    assert veil(noisy) < lo
    assert on.route(noisy)[2] == off.route(noisy)[2] > 0


def test_a_veil_raises_the_haze_weight_to_its_floor_and_leaves_clear_photos_alone(pipe):
    """core.routing.Floor: the estimator gives haze too little where the photo's darkest parts are lifted by a
    veil (real fog: 0.00–0.13, NOTES.md); the floor raises it to the dark channel's measure. On a clear photo
    the veil measures 0 and the routing is the estimator's, untouched. (Not in force in the shipped pipeline:
    on dense real fog it brings out the base's blotches, NOTES.md.)"""
    import dataclasses

    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import psnr, quantize8
    from air_restore.core.floors import Floor
    from air_restore.core.routing import veil

    rule = Floor()  # not in force by default (core.routing.FLOORS): judged here as a pipeline would run it
    # Without the yield rule (core.routing.Yield), which would take the noise weight down with the raised haze
    r, bare = (dataclasses.replace(pipe.restorer, floors=f, yields=()) for f in ((rule,), ()))
    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut()[:256, :256])).permute(2, 0, 1).float() / 255
    for name in ("astronaut", "coffee", "chelsea"):
        assert veil(torch.from_numpy(np.ascontiguousarray(getattr(data, name)())).permute(2, 0, 1) / 255) < rule.ramp[0]
    assert torch.equal(r.route(clean)[0], bare.route(clean)[0])
    hazy = quantize8(D.haze(clean[None], torch.Generator().manual_seed(3), 0.1)[0])
    assert veil(hazy) > rule.ramp[1] and rule.measured(hazy) == 1.0
    h = r.adapters.index("haze")
    raised, estimated = r.route(hazy)[0], bare.route(hazy)[0]
    assert estimated[h] < 0.5 and raised[h] == 1.0
    assert torch.equal(torch.cat([raised[:h], raised[h + 1:]]), torch.cat([estimated[:h], estimated[h + 1:]]))
    assert dataclasses.replace(r, yields=pipe.restorer.yields).route(hazy)[0][r.adapters.index("noise")] == 0.0
    assert psnr(r.restore(hazy, raised).image, clean) > psnr(r.restore(hazy, estimated).image, clean) + 0.2
    # The result says so (`air restore --explain` prints it); on the clear photo nothing was raised.
    from air_restore.registry.pipeline import Pipeline

    floored = Pipeline(r)
    assert floored.run(hazy).floored["haze"][0] == 1.0 and floored.run(clean).floored == {}
    assert pipe.run(hazy).floored == {}  # the shipped pipeline has no haze floor in force (core.floors.FLOORS)


def test_the_haze_floor_counts_only_where_the_segmentation_head_sees_haze(pipe):
    """Blur lifts a bright photo's dark channel as a veil does (CBSD68 blur: up to 0.28, NOTES.md), so the floor
    also asks the segmentation head: a measurement at its maximum raises nothing on a photo whose haze
    probability is below the head ramp (a blurred photo here), and raises the weight fully on a hazy one."""
    import dataclasses

    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import quantize8
    from air_restore.core.floors import Floor
    from air_restore.core.routing import head_means

    always = Floor(measure=lambda rgb: 1.0)  # as if every photo had a dense veil
    r, bare = (dataclasses.replace(pipe.restorer, floors=f, yields=()) for f in ((always,), ()))
    h, classes = r.adapters.index("haze"), r.model.config.classes
    clean = torch.from_numpy(np.ascontiguousarray(data.chelsea()[:256, :256])).permute(2, 0, 1).float() / 255
    blurred = quantize8(D.blur(clean[None], torch.Generator().manual_seed(1), 0.7)[0])
    hazy = quantize8(D.haze(clean[None], torch.Generator().manual_seed(3), 0.1)[0])
    head = {name: head_means(r.model, x) for name, x in (("blurred", blurred), ("hazy", hazy))}
    assert head["blurred"][classes.index("haze")] < always.head_ramp[0]
    assert head["hazy"][classes.index("haze")] > always.head_ramp[1]
    assert always.measured(blurred, lambda: head["blurred"], classes) == 0.0
    assert torch.equal(r.route(blurred)[0], bare.route(blurred)[0])
    assert always.measured(hazy, lambda: head["hazy"], classes) == 1.0 and r.route(hazy)[0][h] == 1.0
    assert always.measured(blurred) == 1.0  # without the head: the measurement alone


def test_the_low_light_weight_is_tempered_where_the_base_alone_brightens_the_photo(pipe):
    """core.routing.Temper: a dark photo that the base alone brightens 2–4 fold gets less of the low-light weight
    the estimator gives it (by the rule's factor of that gain), the other weights as they were, and --explain
    hears why. The same photo saved as a JPEG, which the base gives back as dark as it came, keeps all of it."""
    import dataclasses

    import pytest
    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import quantize8
    from air_restore.core.routing import Temper, crop_pass

    rule = Temper()
    r, bare = (dataclasses.replace(pipe.restorer, tempers=t) for t in ((rule,), ()))
    k = r.adapters.index(rule.adapter)
    clean = torch.from_numpy(np.ascontiguousarray(data.chelsea()[:256, :256])).permute(2, 0, 1).float() / 255
    dark = quantize8(D.lowlight(clean[None], torch.Generator().manual_seed(5), 0.5)[0])
    dark_jpeg = quantize8(D.jpeg(dark[None], torch.Generator().manual_seed(6), 0.5)[0])
    _, gain = crop_pass(r.model, dark)
    _, gain_jpeg = crop_pass(r.model, dark_jpeg)
    assert gain > rule.ramp[0] and gain_jpeg < 1.2  # the base brightens the one and leaves the other dark

    said: dict = {}
    w, before = r.route(dark, yielded=said)[0], bare.route(dark)[0]
    assert before[k] >= 0.3 and rule.factor(gain) < 0.99
    assert float(w[k]) == pytest.approx(float(before[k]) * rule.factor(gain), abs=1e-6)
    others = [i for i in range(len(w)) if i != k]
    assert torch.equal(w[others], before[others])
    assert said[rule.adapter] == (pytest.approx(rule.factor(gain)), rule.why)
    kept = r.route(dark_jpeg)[0]
    assert kept[k] >= 0.3 and torch.equal(kept, bare.route(dark_jpeg)[0])


def test_a_faint_snow_weight_counts_as_none_and_lifts_no_gate(pipe):
    """core.deadzone: the estimator gives a clean photo a faint snow weight, which would lift the clean-pixel gate
    (the head has no snow class); under the dead zone it is 0, the other weights as they were, the clean photo
    comes back closer to itself, and --explain hears why. A snowy photo keeps the whole of its weight."""
    import torch
    from skimage import data

    from air_restore.core.deadzone import DeadZone
    from air_restore.core.metrics import psnr, quantize8
    from air_restore.registry.discovery import get_degradation
    from air_restore.registry.pipeline import Pipeline

    zone = DeadZone()
    r, bare = (dataclasses.replace(pipe.restorer, dead_zones=z) for z in ((zone,), ()))
    k = r.adapters.index(zone.adapter)
    clean = torch.from_numpy(np.ascontiguousarray(data.coffee()[:256, :256])).permute(2, 0, 1).float() / 255
    said: dict = {}
    w, before = r.route(clean, yielded=said)[0], bare.route(clean)[0]
    assert 0.0 < float(before[k]) < zone.below and float(w[k]) == 0.0
    others = [i for i in range(len(w)) if i != k]
    assert torch.equal(w[others], before[others])
    assert said.get(zone.adapter) == ((0.0, zone.why) if before[k] >= 0.01 else None)  # under 0.01 it says nothing
    assert r.released(w, clean) < bare.released(before, clean)
    # on a clean photo where nothing else lifts the gate (a crop of chelsea: every weight under 0.1), it comes back
    # as it came
    calm = torch.from_numpy(np.ascontiguousarray(data.chelsea()[:256, :256])).permute(2, 0, 1).float() / 255
    assert float(bare.route(calm)[0][k]) > 0.0 and float(r.route(calm)[0][k]) == 0.0
    zoned, unzoned = Pipeline(r), Pipeline(bare)
    assert psnr(zoned.run(calm).image, calm) > psnr(unzoned.run(calm).image, calm) + 1.0

    g = torch.Generator().manual_seed(3)
    snowy = torch.from_numpy(np.ascontiguousarray(data.chelsea()[:256, :256])).permute(2, 0, 1).float() / 255
    snowy = quantize8(get_degradation("snow").synthesize(snowy[None], g, 0.5)[0])
    kept, whole = r.route(snowy)[0], bare.route(snowy)[0]
    assert float(whole[k]) >= 0.5 and torch.equal(kept, whole)


def test_the_noise_adapter_takes_what_the_estimator_leaves_but_not_on_a_dark_photo(pipe):
    """Mild noise: the estimator assigns little, the rest goes to the noise adapter (12 CBSD68 photos, σ≈5:
    29.62 → 35.56 dB, benchmarks/gate.py), and the result is closer to the clean photo than the estimator's
    weights alone give. A dark photo gives the fallback nothing (the noise adapter would undo the brightening)."""
    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import psnr, quantize8

    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut()[96:352, 128:384])).permute(2, 0, 1).float() / 255
    mild = quantize8(D.noise(clean[None], torch.Generator().manual_seed(3), 0.1)[0])
    r = pipe.restorer
    w, _, extra = r.route(mild)
    est_only = w.clone()
    est_only[r.adapters.index("noise")] -= extra
    rest = 1 - float(est_only.sum())  # the estimator left a lot; most went to noise (scaled by its doubt: core.routing)
    assert extra > 0.2 and extra > 0.8 * rest
    assert psnr(r.restore(mild, w).image, clean) > psnr(r.restore(mild, est_only).image, clean) + 0.5
    res = pipe.run(mild)
    assert res.fallback == pytest.approx(extra) and res.weights["noise"] == pytest.approx(float(w[0]))
    dark = quantize8(D.lowlight(clean[None], torch.Generator().manual_seed(3), 0.3)[0])
    assert r.route(dark)[2] == 0.0
    given = pipe.run(mild, adapters={"haze": 0.5})  # given weights are used as given
    assert given.fallback == 0.0 and given.weights["noise"] == 0.0


def test_a_night_sky_stays_black_where_the_estimator_finds_the_photo_exposed(pipe):
    """A well-exposed photo under a noisy black band (a night sky): the estimator finds no low light, the head
    reads the band as low light and the base alone lifts it towards grey; the gate keeps it as it came
    (core.routing.KeepDark). A photo the estimator finds dark is restored exactly as without the rule."""
    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import quantize8
    from air_restore.core.routing import KeepDark
    from air_restore.registry.pipeline import Pipeline

    rule = KeepDark()
    assert rule.also_clean(0.0) == {"lowlight": 1.0} and rule.also_clean(rule.ramp[1]) == {}
    assert rule.also_clean(sum(rule.ramp) / 2) == {"lowlight": pytest.approx(0.5)}
    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float() / 255
    night = clean.clone()
    night[:, :192] = quantize8((0.02 + 0.01 * torch.randn((3, 192, 512), generator=torch.Generator().manual_seed(0))))
    sky = (slice(None), slice(0, 176))
    without = Pipeline(dataclasses.replace(pipe.restorer, keep_dark=None))
    out, lifted = pipe.run(night), without.run(night)
    assert out.weights["lowlight"] < rule.ramp[0] and out.weights == lifted.weights
    assert float((lifted.image - night)[sky].mean()) > 0.1 and float((out.image - night)[sky].abs().mean()) < 0.005
    dark = quantize8(D.lowlight(clean[None, :, 128:384, 128:384], torch.Generator().manual_seed(3), 0.5)[0])
    assert pipe.run(dark).weights["lowlight"] > rule.ramp[1]
    assert torch.equal(pipe.run(dark).image, without.run(dark).image)
    # Given weights are used as given: the rule needs the estimator's judgement.
    assert torch.equal(pipe.run(night, adapters={}).image, without.run(night, adapters={}).image)


def test_a_bright_defocused_region_is_not_dehazed_where_the_estimator_finds_no_haze(pipe):
    """A photo whose top third is bright and defocused (a snowfield or a sky out of focus): neither the estimator nor
    the photo's darkest parts show haze, the head reads the band as haze and the base alone darkens it by about 25
    grey levels; the gate keeps it as it came (core.routing.KeepHaze). A photo the estimator finds hazy is restored
    exactly as without the rule."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    from air_restore.core.metrics import quantize8
    from air_restore.core.routing import KeepHaze
    from air_restore.registry.discovery import get_degradation
    from air_restore.registry.pipeline import Pipeline

    rule = KeepHaze()
    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut())).permute(2, 0, 1).float() / 255
    assert rule.also_clean(0.0, clean) == {"haze": 1.0} and rule.also_clean(rule.ramp[1], clean) == {}
    assert rule.also_clean(0.0, 0.5 + 0.5 * clean) == {}  # a veil over the darkest parts: haze the base may remove
    bright = clean.clone()
    bright[:, :170] = quantize8(0.6 + 0.35 * F.avg_pool2d(clean[None, :, :170], 31, 1, 15, count_include_pad=False)[0])
    band = (slice(None), slice(0, 170))
    without = Pipeline(dataclasses.replace(pipe.restorer, keep_haze=None))
    out, darkened = pipe.run(bright, explain=True), without.run(bright)
    assert out.weights["haze"] < rule.ramp[0] and out.weights == darkened.weights
    assert out.shares["haze"] > 0.05 and out.kept_haze == 1.0
    # Without the rule the pipeline darkens the band by about 9 grey levels (the noise adapter, blended in, undoes
    # part of the base's 25); with it the band comes back within 1% of itself.
    assert float((darkened.image - bright)[band].mean()) < -0.03 and float((out.image - bright)[band].abs().mean()) < 0.01
    hazy = quantize8(get_degradation("haze").synthesize(clean[None, :, 128:384, 128:384], torch.Generator().manual_seed(3),
                                                        0.5)[0].clamp(0, 1))
    assert pipe.run(hazy).weights["haze"] > rule.ramp[1]
    assert torch.equal(pipe.run(hazy).image, without.run(hazy).image)
    # Given weights are used as given: the rule needs the estimator's judgement.
    assert torch.equal(pipe.run(bright, adapters={}).image, without.run(bright, adapters={}).image)


def test_noise_makes_way_for_haze_on_a_hazy_noisy_photo(pipe):
    """core.routing.Yield: the noise weight, the fallback's part included, is scaled by 1 − the haze weight. On a
    hazy, noisy photo the haze adapter beside the base restores it better without the noise weight beside it
    (12 CBSD68 photos: +1.06 dB; BENCHMARKS.md); a noisy photo without haze keeps its noise weight."""
    import torch
    from skimage import data

    from air_restore.core.metrics import psnr, quantize8
    from air_restore.core.routing import Yield
    from air_restore.registry.discovery import get_degradation
    from air_restore.registry.pipeline import Pipeline

    rule, order = Yield(), list(BUNDLED_ORDER)
    w = torch.zeros(len(order))
    w[order.index("noise")], w[order.index("haze")], w[order.index("rain")] = 0.5, 0.8, 0.3
    out = rule.apply(w, order)
    others = [i for i, name in enumerate(order) if name != "noise"]
    assert out[order.index("noise")] == pytest.approx(0.5 * 0.2) and torch.equal(out[others], w[others])
    assert w[order.index("noise")] == 0.5  # a copy: the weights given are left as they were
    assert not rule.applies(["noise", "rain"])
    plain = Pipeline(dataclasses.replace(pipe.restorer, yields=()))
    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut()[:256, :256])).permute(2, 0, 1).float() / 255
    g = torch.Generator().manual_seed(0)
    hazy_noisy = quantize8(get_degradation("noise").synthesize(
        get_degradation("haze").synthesize(clean[None], g, 0.5).clamp(0, 1), g, 0.5).clamp(0, 1)[0])
    a, b = pipe.run(hazy_noisy), plain.run(hazy_noisy)
    assert a.weights["haze"] == b.weights["haze"] > 0.5
    assert a.weights["noise"] == pytest.approx(b.weights["noise"] * (1 - b.weights["haze"]), abs=1e-6)
    assert psnr(a.image, clean).item() > psnr(b.image, clean).item() + 0.5
    assert a.yielded["noise"] == (pytest.approx(1 - a.weights["haze"]), rule.why) and "noise" not in b.yielded
    noisy = quantize8(get_degradation("noise").synthesize(clean[None], torch.Generator().manual_seed(1), 0.5)[0])
    a, b = pipe.run(noisy), plain.run(noisy)
    assert b.weights["noise"] > 0.5 and a.weights["noise"] > 0.95 * b.weights["noise"] and "noise" not in a.yielded


def test_noise_makes_way_for_jpeg_once_the_jpeg_weight_is_measured(pipe):
    """core.routing.YIELDS' second rule: on a colour JPEG the noise weight (the estimator's and the fallback's) is
    scaled down as the jpeg weight, which a detection rule measures after the estimator, rises from 0.5 to 1; the jpeg
    adapter cleans the codec's noise itself. A grey photo keeps its noise weight for the lumanoise adapter
    (``colour_only``)."""
    import io

    import torch
    from PIL import Image
    from skimage import data

    from air_restore.core.metrics import psnr
    from air_restore.core.routing import YIELDS
    from air_restore.registry.pipeline import Pipeline

    rule = YIELDS[1]
    assert (rule.adapter, rule.to, rule.ramp, rule.colour_only) == ("noise", "jpeg", (0.5, 1.0), True)
    plain = Pipeline(dataclasses.replace(pipe.restorer, yields=YIELDS[:1]))

    def jpeg(a: np.ndarray, quality: int) -> torch.Tensor:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "JPEG", quality=quality)
        return torch.from_numpy(np.array(Image.open(buf).convert("RGB"))).permute(2, 0, 1).float() / 255

    clean = np.ascontiguousarray(data.astronaut()[:256, :256])
    x = jpeg(clean, 40)
    a, b = pipe.run(x), plain.run(x)
    assert 0.5 < a.weights["jpeg"] == b.weights["jpeg"] < 0.95 and b.weights["noise"] > 0.15
    factor = 2 * (1 - a.weights["jpeg"])  # 1 − ramp(jpeg, 0.5, 1)
    assert a.weights["noise"] == pytest.approx(b.weights["noise"] * factor, abs=1e-6)
    assert a.yielded["noise"] == (pytest.approx(factor), rule.why) and "noise" not in b.yielded
    ref = torch.from_numpy(clean).permute(2, 0, 1).float() / 255
    assert psnr(a.image, ref).item() > psnr(b.image, ref).item() - 0.05  # the gain is in BENCHMARKS.md, 24 photos
    grey = jpeg(np.ascontiguousarray(data.camera()[128:384, 128:384]), 40)
    assert grey.shape[0] == 3 and pipe.run(grey).weights == plain.run(grey).weights

def test_a_second_pass_restores_what_haze_hid(pipe):
    """core.routing.Sequel: where haze or low light leads the first pass, its output is routed and restored once
    more. A hazy, rainy photo: one pass takes the veil off and leaves the rain (12 CBSD68 photos: 12.8 → 17.0 dB
    with the second; BENCHMARKS.md); a noisy photo is restored once, as before."""
    import torch
    from skimage import data

    from air_restore.core.metrics import psnr, quantize8
    from air_restore.core.routing import Sequel
    from air_restore.registry.discovery import get_degradation
    from air_restore.registry.pipeline import Pipeline

    rule, order = Sequel(), list(BUNDLED_ORDER)
    w = torch.zeros(len(order))
    w[order.index("noise")], w[order.index("haze")] = 0.9, 0.29
    assert not rule.applies(w, order)
    w[order.index("haze")] = 0.3
    assert rule.applies(w, order) and not rule.applies(w, ["noise", "blur"])
    once = Pipeline(dataclasses.replace(pipe.restorer, sequel=None))
    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut()[:256, :256])).permute(2, 0, 1).float() / 255
    g = torch.Generator().manual_seed(0)
    x = get_degradation("haze").synthesize(clean[None], g, 0.5).clamp(0, 1)
    hazy_rainy = quantize8(get_degradation("rain").synthesize(x, g, 0.5).clamp(0, 1)[0])
    seen: list[tuple[int, int]] = []
    a, b = pipe.run(hazy_rainy, progress=lambda done, total: seen.append((done, total))), once.run(hazy_rainy)
    assert a.weights == b.weights and a.weights["haze"] >= rule.at and b.second is None
    assert a.second is not None and set(a.second) == set(order)
    assert psnr(a.image, clean).item() > psnr(b.image, clean).item() + 1.5
    # One progress bar over both passes: it never goes back and ends full.
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == seen[-1][1] == seen[0][1]
    # Restorer.restore routes as `air restore` does, second pass included; given weights restore once.
    assert torch.allclose(pipe.restorer.restore(hazy_rainy).image, a.image, atol=1e-5)
    assert pipe.run(hazy_rainy, adapters=a.weights).second is None
    noisy = quantize8(get_degradation("noise").synthesize(clean[None], torch.Generator().manual_seed(1), 0.5)[0])
    a, b = pipe.run(noisy), once.run(noisy)
    assert a.second is None and torch.equal(a.image, b.image)


def test_a_dark_jpeg_comes_back_brighter(pipe):
    """A dark photo saved as a JPEG, as phones save them: base v1 alone leaves it as dark as it came (JPEG, even at
    quality 90, hides the sensor noise it learned to read low light from), so the low-light adapter, trained on
    JPEG-compressed dark crops too (core.families.ADAPTER_FAMILIES), must brighten it: 8 CBSD68 photos,
    9.7 → 21 dB (BENCHMARKS.md)."""
    import torch
    from skimage import data

    from air_restore.core import degradations as D
    from air_restore.core.metrics import psnr, quantize8

    clean = torch.from_numpy(np.ascontiguousarray(data.astronaut()[96:352, 128:384])).permute(2, 0, 1).float() / 255
    g = torch.Generator().manual_seed(5)
    dark = quantize8(D.jpeg(D.lowlight(clean[None], g, 0.5).clamp(0, 1), g, 0.1)[0])
    r = pipe.restorer
    base = r.restore(dark, torch.zeros(len(r.adapters)), gate=False).image
    assert psnr(base, clean) < psnr(dark, clean) + 1  # what base v1 alone does: nearly nothing
    out = pipe.run(dark)
    assert out.weights["lowlight"] > 0.3
    assert psnr(out.image, clean) > psnr(dark, clean) + 6 and out.image.mean() > 2 * dark.mean()


def test_a_blocky_jpeg_gets_the_jpeg_adapter_by_its_grid(pipe):
    """A photo saved at JPEG quality 20 by libjpeg (not the codec the adapter's plugin uses): the 8×8 grid in its
    pixels gives the jpeg adapter weight 1, less realnoise's (core.routing.Detected; the estimator does not weight
    it), the gate is lifted as much, and the photo comes back closer to the original than the pipeline without
    that adapter gives it; the same photo never compressed gets weight 0, and so does a hazy photo as blocky (the
    adapter would undo the base's dehazing: core.routing.Detected)."""

    import io

    import torch
    from PIL import Image
    from skimage import data

    from air_restore.core.metrics import psnr

    # Not coffee: its sensor grain gets realnoise 0.99, whose adapter cleans the blocks as well (29.68 dB either way).
    a = np.ascontiguousarray(data.chelsea()[64:320, 128:384])
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=20)
    clean = torch.from_numpy(a).permute(2, 0, 1).float() / 255
    blocky = torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1).float() / 255
    r = pipe.restorer
    assert [d.adapter for d in r.detecting()] == ["jpeg"] and "jpeg" not in r.estimator.config.adapters
    out = pipe.run(blocky)
    # Measured at 1, less what realnoise (learnt from camera JPEGs) cleans already (0.01 here).
    assert out.weights["jpeg"] > 0.95 and out.weights["jpeg"] == pytest.approx(1.0 - out.weights["realnoise"])
    assert "jpeg" in out.detected and pipe.run(clean).weights["jpeg"] == 0.0
    # Without realnoise attached the rule reads no realnoise weight (benchmarks/blending.py --without).
    k = r.adapters.index("realnoise")
    detached = dataclasses.replace(r, adapters=r.adapters[:k] + r.adapters[k + 1 :])
    assert float(detached.route(blocky)[0][detached.adapters.index("jpeg")]) == 1.0
    without = r.estimate(blocky).clone()
    without[r.adapters.index("jpeg")] = 0.0
    before = r.restore(blocky, without).image  # the pipeline as it was without the jpeg adapter
    assert psnr(out.image, clean) > psnr(before, clean) + 0.3
    assert psnr(out.image, clean) > psnr(blocky, clean) + 0.3
    hazy = torch.from_numpy(np.array(Image.open(EXAMPLE).convert("RGB"))).permute(2, 0, 1).float() / 255
    buf = io.BytesIO()
    Image.fromarray((hazy * 255).round().byte().permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=20)
    hazy_blocky = torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1).float() / 255
    assert r.detected[0].measured(hazy_blocky) == 1.0 and r.estimate(hazy_blocky)[r.adapters.index("jpeg")] == 0.0

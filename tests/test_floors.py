"""core.floors: the noise floor finds white noise the estimator and the head miss (grey photos, luma noise) and leaves
texture, clean photos and colour noise (which the head sees) as the pipeline routed them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from air_restore.core.floors import FLOORS, HAZE, NOISE, fine_noise, own_adapters
from air_restore.core.metrics import psnr, quantize8
from air_restore.registry import load_pipeline

LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def _photo(name: str) -> torch.Tensor:
    a = torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)())).float() / 255
    return a.permute(2, 0, 1)[:3].contiguous() if a.ndim == 3 else a[None].expand(3, -1, -1).contiguous()


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (x * LUMA).sum(0, keepdim=True).expand(3, -1, -1).contiguous()


def _with_noise(x: torch.Tensor, sigma: float, seed: int = 0, *, colour: bool = False) -> torch.Tensor:
    shape = x.shape if colour else (1, *x.shape[1:])
    n = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * sigma / 255
    return quantize8((x + n).clamp(0, 1))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera", "grass", "brick"])
def test_fine_noise_reads_white_noise_and_not_texture(name: str) -> None:
    """Clean photos read under the floor's ramp, grass and brick (fine texture everywhere) included, where
    Immerkær's operator alone reads grass as noisy; grey noise at σ 10 reads past the ramp's end, and the reading
    grows with σ in proportion (white noise halves at half scale, texture does not)."""
    x = _photo(name)
    lo, hi = NOISE.ramp
    assert fine_noise(x) < lo
    sigma10, sigma20 = fine_noise(_with_noise(x, 10)), fine_noise(_with_noise(x, 20))
    assert sigma10 > hi - 0.5
    assert 1.7 < sigma20 / sigma10 < 2.3
    assert fine_noise(_with_noise(x, 10)[:, :20, :]) == 0.0  # under two blocks a side: not measured


def test_fine_noise_in_strips_reads_what_it_reads_whole() -> None:
    """The operator is taken a strip of rows at a time (a 64-megapixel photo's memory): the strips' edges overlap, so
    every square's energy is the same as in one pass, the photo's top and bottom edges included."""
    from air_restore.core.floors import _fine_energy

    y = _with_noise(_photo("coffee"), 10)[0, :384, :592][None, None] * 255
    whole = _fine_energy(y, 16, strip=4096)
    assert whole.shape == (24, 37)
    for strip in (16, 48, 128):
        assert torch.allclose(_fine_energy(y, 16, strip=strip), whole, atol=1e-4), strip


def test_the_noise_floor_stands_down_on_a_dark_photo() -> None:
    """The low-light plugin's sensor noise is white too, and the noise adapter undoes the base's brightening: where
    the estimator finds the photo dark the floor is 0."""
    noisy = _with_noise(_grey(_photo("astronaut")), 10)
    assert NOISE in FLOORS and HAZE not in FLOORS
    assert NOISE.measured(noisy) == 1.0 and NOISE.measured(_photo("astronaut")) == 0.0
    assert NOISE.measured(noisy, estimated={"lowlight": NOISE.est_limit}) == 0.0
    assert NOISE.measured(noisy, estimated={"lowlight": NOISE.est_limit / 2, "haze": 0.9}) == 1.0


def test_the_noise_floor_makes_way_where_the_head_reads_haze() -> None:
    """The noise adapter undoes the base's dehazing: where the head reads haze (mean 0.5 and up) the floor is 0, half
    way up its ramp half of it; where it reads the photo as noisy rather than clean the floor is 0 too."""
    classes = ("clean", "noise", "blur", "haze", "rain", "lowlight")
    noisy = _with_noise(_grey(_photo("astronaut")), 10)

    def head(clean: float, haze: float):
        return lambda: torch.tensor([clean, 0.0, 0.0, haze, 0.0, 0.0])

    lo, hi = NOISE.unless_head_ramp
    assert NOISE.unless_head == ("haze",)
    assert NOISE.measured(noisy, head(0.9, lo - 0.01), classes) == 1.0
    assert NOISE.measured(noisy, head(0.9, (lo + hi) / 2), classes) == pytest.approx(0.5)
    assert NOISE.measured(noisy, head(0.4, hi), classes) == 0.0
    assert NOISE.measured(noisy, head(NOISE.head_ramp[0] - 0.01, 0.0), classes) == 0.0  # the head sees the noise


@pytest.fixture(scope="module")
def pipelines():
    r = load_pipeline(device="cpu").restorer
    return r, dataclasses.replace(r, floors=())


def test_lumanoise_is_the_floors_adapter_and_no_estimators() -> None:
    """The noise floor moves its raise to a bundled adapter of its own (lumanoise, learnt on noise without colour),
    which no estimator is trained for: the bundled estimator is picked for the bundled adapters without a warning,
    and `air train estimator` leaves lumanoise out as it does the jpeg adapter a detection rule weights."""
    from air_restore.core.routing import estimated, ruled
    from air_restore.registry.restorer import load_restorer, pick_estimator
    from air_restore.registry.store import BUNDLED_FLOORED, BUNDLED_ORDER, bundled_estimator_path

    assert set(BUNDLED_FLOORED) == own_adapters() == {f.moves_to for f in FLOORS} == {"lumanoise"}
    assert ruled() == {"jpeg", "lumanoise"}
    assert estimated(list(BUNDLED_ORDER)) == ["noise", "blur", "haze", "rain", "lowlight", "snow", "realnoise"]
    est, path, warnings = pick_estimator(list(BUNDLED_ORDER))
    assert path == bundled_estimator_path() and not warnings
    r = load_restorer()
    assert "lumanoise" in r.adapters and not r.warnings and r.ruled() == ruled()
    assert list(r.estimator.config.adapters) == estimated(r.adapters)


def test_a_grey_photos_noise_weight_goes_to_lumanoise_where_the_floor_reads_nothing(pipelines) -> None:
    """Grain coarser than a pixel keeps its energy at half scale, as texture does, so the floor reads nothing (RNI6's
    grey scans); on a grey photo the noise has no colour all the same, so its noise weight goes to lumanoise. On a
    colour photo with the same grain the noise adapter keeps it."""
    from air_restore.core.floors import colourless

    r, bare = pipelines
    k, luma = r.adapters.index("noise"), r.adapters.index("lumanoise")
    grain = F.interpolate(torch.randn((1, 1, 128, 128), generator=torch.Generator().manual_seed(0)), scale_factor=2)[0]
    grey = quantize8((_grey(_photo("camera")[:, 128:384, 128:384]) + grain * 12 / 255).clamp(0, 1))
    colour = quantize8((_photo("astronaut")[:, 100:356, 150:406] + grain * 12 / 255).clamp(0, 1))
    assert colourless(grey) and colourless(_saved_as_jpeg(grey, 90)) and not colourless(colour)
    for x in (grey, colour):
        assert NOISE.measured(x) == 0.0  # the floor reads no fine, white noise
    w, est = r.estimate(grey), bare.estimate(grey)
    assert float(est[k]) > 0.05 and float(w[k]) == 0.0 and float(w[luma]) == pytest.approx(float(est[k]))
    raised, moved = {}, {}  # what `air restore --explain` says: moved, not raised, and why
    r.route(grey, raised, moved=moved)
    assert raised == {} and moved == {"lumanoise": ("noise", "the photo has no colour, so neither has its noise")}
    w, est = r.estimate(colour), bare.estimate(colour)
    assert torch.equal(w, est) and float(w[luma]) == 0.0
    moved = {}
    r.route(colour, raised, moved=moved)
    assert raised == {} and moved == {}


def test_the_floor_hands_its_adapter_a_share_of_the_noise_weight_by_what_it_measured(pipelines) -> None:
    """Below 0.1 the noise weight stays with the noise adapter (a textured colour JPEG at q90 reads a trace of luma
    noise, and lumanoise at the estimator's whole noise weight smoothed its texture away), from 0.15 all of it goes
    to lumanoise, and in between a share in proportion; a grey photo's all of it whatever the floor measures. A floor
    with a fixed measurement shows the rule alone."""
    r, bare = pipelines
    assert NOISE.moves_ramp == (0.1, 0.15)
    k, luma = r.adapters.index("noise"), r.adapters.index("lumanoise")
    x = _with_noise(_photo("astronaut")[:, 100:356, 150:406], 5, colour=True)
    est = float(bare.estimate(x)[k])
    assert est > 0.5
    for found, share in ((0.05, 0.0), (0.125, 0.5), (0.3, 1.0)):
        floor = dataclasses.replace(NOISE, measure=lambda rgb, v=found: v, ramp=(0.0, 1.0), head_ramp=None,
                                    unless_head=(), unless_estimated=(), makes_way_for=())
        moved: dict = {}
        w = dataclasses.replace(r, floors=(floor,)).route(x, moved=moved)[0]
        assert float(w[luma]) == pytest.approx(est * share, abs=1e-5), found
        assert float(w[k]) == pytest.approx(est * (1 - share), abs=1e-5), found
        assert ("lumanoise" in moved) == (share > 0)
        assert not 0 < share < 1 or moved["lumanoise"][1].startswith("50% of it, by how much the floor found")
    grey = _with_noise(_grey(_photo("astronaut")[:, 100:356, 150:406]), 5)
    floor = dataclasses.replace(floor, measure=lambda rgb: 0.05)
    w = dataclasses.replace(r, floors=(floor,)).route(grey)[0]
    assert float(w[k]) == 0.0 and float(w[luma]) > 0.05


def test_the_pipeline_cleans_a_grey_noisy_photo_it_used_to_keep(pipelines) -> None:
    """The shipped estimator gives grey noise little weight and the head reads it as clean, so without the floor the
    gate kept most of it; with it the lumanoise adapter (learnt on noise without colour) gets weight 1 in the noise
    adapter's place, and the gate lifts (the head reads it clean)."""
    r, bare = pipelines
    clean = _grey(_photo("camera")[:, 128:384, 128:384])
    noisy = _with_noise(clean, 10)
    k, luma = r.adapters.index("noise"), r.adapters.index("lumanoise")
    w, est = r.estimate(noisy), bare.estimate(noisy)
    assert NOISE.moves_to == "lumanoise" and float(est[k]) < 0.6 and float(est[luma]) == 0.0
    assert float(w[luma]) > 0.99 and float(w[k]) == 0.0
    assert r.released(w, noisy) > 0.9
    before, after = psnr(bare.restore(noisy).image, clean), psnr(r.restore(noisy).image, clean)
    assert after > before + 1.5, (before, after)


@pytest.mark.parametrize("case", ["clean", "colour noise"])
def test_the_floor_leaves_clean_photos_and_colour_noise_as_routed(pipelines, case: str) -> None:
    """A clean photo reads no noise, so nothing changes; colour noise at σ 8 measures, but the head sees it (and the
    estimator weights it already), so the floor stays out of its way: the output is the same to the bit."""
    r, bare = pipelines
    x = _photo("astronaut")[:, 100:356, 150:406]
    if case == "colour noise":
        x = _with_noise(x, 8, colour=True)
        assert fine_noise(x) > NOISE.ramp[0]  # the floor measures something, and must not act on it
    w = r.estimate(x)
    # the gate lifted only as far as an adapter the head has no class for is weighted (snow, faintly), as without it
    assert torch.equal(w, bare.estimate(x)) and r.released(w, x) == max(float(w[i]) for i in r.unseen()) < 0.05
    assert float(w[r.adapters.index("lumanoise")]) == 0.0  # only the floor weights it
    assert torch.equal(r.restore(x).image, bare.restore(x).image)


def _saved_as_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((x * 255).round().byte().permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1).float() / 255


def test_the_noise_weight_makes_way_for_the_jpeg_adapter_on_a_noisy_jpeg(pipelines) -> None:
    """The jpeg adapter learnt noise under the codec (core.families.noisy_jpeg): on a photo with luma noise saved as a
    JPEG, the noise adapter raised to weight 1 on top of it smoothed twice. Once the jpeg weight is measured, the noise
    weight, the floor's raise with the estimator's share, is scaled down as the jpeg weight rises from 0.5 to 1
    (core.routing.YIELDS): where the codec is plain (σ 20, q75: jpeg weight ~1) nothing is left of it, and the photo
    comes out over 1 dB nearer the clean one than with the whole raise; at q90 (jpeg weight ~0.3) the codec left most
    of the noise, and the whole raise stays, as `--explain` says."""
    from air_restore.core.routing import YIELDS

    r, bare = pipelines
    whole = dataclasses.replace(r, floors=(dataclasses.replace(NOISE, makes_way_for=()),), yields=YIELDS[:1])
    k, j, luma = r.adapters.index("noise"), r.adapters.index("jpeg"), r.adapters.index("lumanoise")
    assert NOISE.makes_way_for == ("jpeg",) and YIELDS[1].to == "jpeg"
    clean = _photo("chelsea")[:, :256, :256]
    heavy = _saved_as_jpeg(_with_noise(clean, 20), 75)
    w, est = r.estimate(heavy), dataclasses.replace(bare, yields=YIELDS[:1]).estimate(heavy)
    assert float(whole.estimate(heavy)[luma]) > 0.99 and float(w[j]) > 0.99
    assert float(est[k]) > 0.1 and float(w[k]) < 0.01 and float(w[luma]) == 0.0
    assert psnr(r.restore(heavy).image, clean) > psnr(whole.restore(heavy).image, clean) + 1.0

    clean = _photo("astronaut")[:, :256, :256]
    light = _saved_as_jpeg(_with_noise(clean, 10), 90)
    w, raised, yielded = r.estimate(light), {}, {}
    assert 0.1 < float(w[j]) < 0.5 and float(w[k]) == 0.0
    assert float(w[luma]) == pytest.approx(1.0, abs=1e-3)  # the floor raised it to 1; the jpeg weight is too low
    r.route(light, raised, yielded)
    # What `air restore --explain` prints: the raise, and no factor.
    assert raised["lumanoise"][0] == pytest.approx(1.0) and not {"noise", "lumanoise"} & set(yielded)
    half = _saved_as_jpeg(_with_noise(clean, 10), 85)  # between the two (jpeg weight ~0.7): part of the raise stays
    w, raised, yielded = r.estimate(half), {}, {}
    factor = 2 * (1 - float(w[j]))
    assert 0.5 < float(w[j]) < 0.99 and float(w[luma]) == pytest.approx(factor, abs=1e-4)
    r.route(half, raised, yielded)
    assert raised["lumanoise"][0] == pytest.approx(1.0) and yielded["noise"] == (pytest.approx(factor), YIELDS[1].why)


def test_air_restore_explains_the_floor_and_gives_a_grey_scan_back_grey_and_cleaner(tmp_path) -> None:
    """What a user with a noisy grey scan meets: `air restore --explain` raises the noise weight, says why, no longer
    says the gate kept the photo whole, and writes a grey file nearer the clean photo than the input."""
    from PIL import Image
    from typer.testing import CliRunner

    from air_restore.cli.main import app

    clean = _photo("camera")[0, 128:384, 128:384]
    noisy = _with_noise(clean[None].expand(3, -1, -1), 10)[0]
    src, out = tmp_path / "scan.png", tmp_path / "scan_restored.png"
    Image.fromarray((noisy * 255).round().byte().numpy(), mode="L").save(src)
    r = CliRunner().invoke(app, ["restore", str(src), "-o", str(out), "--explain"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "adapter weights (chosen by the estimator and the rules below)" in text
    assert ("the lumanoise weight is the estimator's noise weight, raised to 1.00 by a measurement of the photo and "
            "handed to the lumanoise adapter, the rule's own (fine, white noise in its luma") in text
    assert "the estimator gave it less" not in text  # the estimator gives lumanoise nothing of its own
    assert "the gate kept" not in text
    restored = Image.open(out)
    assert restored.mode == "L"
    restored = torch.from_numpy(np.asarray(restored).copy()).float() / 255
    assert psnr(restored[None], clean[None]) > psnr(noisy[None], clean[None]) + 2

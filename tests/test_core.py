"""Tests for the pure tensor layer: air_restore.core (arch, degradations, cutmix, tiling, restore).

Everything runs on the CPU with small tensors. The restore tests use the shipped weights.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from skimage import data as skdata

from air_restore.core import degradations as D
from air_restore.core.errors import InvalidValueError
from air_restore.core.arch import AirUNet, AirUNetConfig, Block, count_parameters, fingerprint
from air_restore.core.cutmix import cutmix_batch
from air_restore.core.restore import resolve_device, restore
from air_restore.core.tiling import tile_spans, tiled_forward

TINY = AirUNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1)
DEGRADATIONS = {"noise": D.noise, "blur": D.blur, "haze": D.haze, "rain": D.rain, "lowlight": D.lowlight}
SYNTHS = list(DEGRADATIONS.values())
# The wider families base v2 trains on (core.families) meet the same contract.
WIDER = {"jpeg": D.jpeg, "jpeg_codec": D.jpeg_codec, "camera_noise": D.camera_noise, "gaussian_blur": D.gaussian_blur,
         "flat_haze": D.flat_haze, "drizzle": D.drizzle, "dim": D.dim, "mono_noise": D.mono_noise}
DEGRADATIONS = {**DEGRADATIONS, **WIDER}


def _photo(h: int, w: int, which: str = "astronaut") -> torch.Tensor:
    """A real photo from scikit-image as [3, h, w] float in [0, 1] (area-resized)."""
    a = torch.from_numpy(np.ascontiguousarray(getattr(skdata, which)())).permute(2, 0, 1).float() / 255
    return F.interpolate(a[None], size=(h, w), mode="area")[0].clamp(0, 1)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """Two real photos [2, 3, 48, 48] in [0, 1]."""
    return torch.stack([_photo(48, 48, "astronaut"), _photo(48, 48, "coffee")])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image MSE [B]."""
    return (a - b).square().flatten(1).mean(1)


def _randomize_residual_scales(model: AirUNet, seed: int = 0) -> AirUNet:
    """A fresh model's blocks are identities (β = γ = 0); give them non-zero scales so tests see them."""
    g = _gen(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".beta") or name.endswith(".gamma"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model


# ---------------------------------------------------------------------------------------------- arch


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"enc_blocks": (1, 2), "dec_blocks": (1,)}, "same number"),
        ({"classes": ("noise", "clean")}, "start with 'clean'"),
        ({"classes": ()}, "start with 'clean'"),
        ({"classes": ("clean", "noise", "noise")}, "unique"),
        ({"width": 4}, "width"),
        ({"middle_blocks": -1}, "middle_blocks"),
        ({"depth": 3}, "depth"),  # extra fields are forbidden
    ],
)
def test_config_rejects_invalid_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AirUNetConfig(**kwargs)


def test_config_is_frozen_and_pad_multiple_follows_levels() -> None:
    cfg = AirUNetConfig()
    with pytest.raises(ValidationError):
        cfg.width = 32  # type: ignore[misc]
    assert cfg.pad_multiple == 2 ** len(cfg.enc_blocks)
    assert TINY.pad_multiple == 4
    assert AirUNetConfig(enc_blocks=(1,), dec_blocks=(1,)).pad_multiple == 2


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (8, 8), (37, 91), (40, 17)])
def test_output_shapes_match_any_input_size(hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        out = model(x)
    assert out.image.shape == (2, 3, *hw)
    assert out.seg_logits.shape == (2, len(TINY.classes), *hw)
    assert torch.isfinite(out.image).all() and torch.isfinite(out.seg_logits).all()


def test_default_model_handles_odd_size_and_stays_under_8m_parameters() -> None:
    model = AirUNet().eval()
    n = count_parameters(model)
    assert n == sum(p.numel() for p in model.parameters())
    assert n <= 8_000_000
    with torch.no_grad():
        out = model(torch.rand(1, 3, 37, 91))
    assert out.image.shape == (1, 3, 37, 91)
    assert out.seg_logits.shape == (1, 6, 37, 91)


def test_fresh_blocks_are_identities() -> None:
    torch.manual_seed(0)
    block = Block(8)
    x = torch.randn(2, 8, 9, 11)
    assert torch.equal(block(x), x)
    assert not block.beta.any() and not block.gamma.any()


def _peak_live_bytes(fn) -> tuple[object, int]:
    """``fn()`` and the most bytes its tensors held at once (each storage counted from the op that made
    it until the last reference to it goes)."""
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class Live(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live, self.peak = {}, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and (key := t.untyped_storage().data_ptr()) not in self.live:
                    self.live[key] = t.untyped_storage().nbytes()
                    weakref.finalize(t, self.live.pop, key, None)
            self.peak = max(self.peak, sum(self.live.values()))
            return out

    with Live() as mode:
        out = fn()
    return out, mode.peak


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_inference_overwrites_features_to_save_memory_and_gives_the_same_numbers(shipped, dtype) -> None:
    """#15: without autograd the blocks add into their input and each skip is let go once added, so a
    tile needs less memory; the outputs are the training forward's, bit for bit, with adapters merged or
    not, in fp32 and under bf16 autocast (what ``air restore`` runs on a CPU with native bf16)."""
    from air_restore.core.lora import LoRAFactors, attach, blend

    model = copy.deepcopy(shipped).to(memory_format=torch.channels_last)
    g = _gen(0)
    targets = [(path, m) for path, m in model.named_modules() if path.rsplit(".", 1)[-1] in model.config.lora_targets]
    for name in ("a", "b"):  # two adapters with factors on every target conv, as a blend has them
        attach(model, name, {path: LoRAFactors(0.1 * torch.randn(4, m.in_channels, generator=g),
                                               0.1 * torch.randn(m.out_channels, 4, generator=g), 1.0)
                             for path, m in targets})
    x = _photo(72, 88)[None].contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32)
    for mode in ("merged", "unmerged"):
        with blend(model, torch.tensor([[0.7, 0.4]]), mode=mode), autocast:
            with torch.enable_grad():
                trained = model(x)
            with torch.no_grad():
                inferred = model(x)
        assert torch.equal(trained.image, inferred.image) and torch.equal(trained.seg_logits, inferred.seg_logits)

    with torch.no_grad(), autocast:
        feat = model.intro(x)
        plain, plain_peak = _peak_live_bytes(lambda: model._trunk(feat.clone()))
        owned, owned_peak = _peak_live_bytes(lambda: model._trunk_owned(feat.clone()))
    assert torch.equal(plain, owned)
    assert owned_peak < 0.8 * plain_peak  # measured here: 0.73 (fp32), 0.33 (bf16)


def test_inference_keeps_features_a_hook_holds() -> None:
    """A forward hook (a profiler's, a user's) may keep a block's output: then nothing is overwritten."""
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    x = torch.rand(1, 3, 32, 32, generator=_gen(1))
    kept = []
    hook = model.encoders[0][0].register_forward_hook(lambda m, i, out: kept.append(out))
    with torch.no_grad():
        model(x)
    hook.remove()
    with torch.no_grad():
        reference = model.encoders[0][0](model.intro(x))
    assert torch.equal(kept[0], reference)


@pytest.mark.parametrize("hw", [(32, 32), (37, 91)])
def test_zeroed_ending_makes_the_image_output_equal_the_input(hw: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    x = torch.rand(1, 3, *hw)
    with torch.no_grad():
        assert not torch.equal(model(x).image, x)  # the ending conv is not zero at start
        model.ending.weight.zero_()
        model.ending.bias.zero_()
        out = model(x)
    assert torch.equal(out.image, x)


def test_output_pixels_depend_only_on_a_bounded_neighbourhood() -> None:
    """No global operation: changing a corner pixel leaves the far corner's output unchanged."""
    torch.manual_seed(0)
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    x = torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[:, :, 0, 0] = 1 - y[:, :, 0, 0]
    with torch.no_grad():
        a, b = model(x), model(y)
    assert (a.image[..., :4, :4] - b.image[..., :4, :4]).abs().max() > 1e-4
    torch.testing.assert_close(a.image[..., 48:, 48:], b.image[..., 48:, 48:], atol=1e-6, rtol=0)
    torch.testing.assert_close(a.seg_logits[..., 48:, 48:], b.seg_logits[..., 48:, 48:], atol=1e-6, rtol=0)


def test_fingerprint_is_stable_and_sees_every_change() -> None:
    torch.manual_seed(0)
    sd = {k: v.half() for k, v in AirUNet(config=TINY).state_dict().items()}
    fp = fingerprint(sd)
    assert fp.startswith("sha256:") and len(fp) == len("sha256:") + 16
    assert fingerprint(sd) == fp
    assert fingerprint(copy.deepcopy(sd)) == fp
    assert fingerprint(dict(reversed(list(sd.items())))) == fp  # key order does not matter
    non_contig = dict(sd, **{"intro.weight": sd["intro.weight"].permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)})
    assert not non_contig["intro.weight"].is_contiguous()
    assert fingerprint(non_contig) == fp

    edited = {k: v.clone() for k, v in sd.items()}
    edited["ending.weight"].view(-1)[0] += 0.01
    assert fingerprint(edited) != fp
    renamed = dict(sd)
    renamed["ending.weight2"] = renamed.pop("ending.weight")
    assert fingerprint(renamed) != fp
    assert fingerprint({k: v.float() for k, v in sd.items()}) != fp  # dtype is part of the identity


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fingerprint_is_the_same_on_the_gpu() -> None:
    sd = {k: v.half() for k, v in AirUNet(config=TINY).state_dict().items()}
    assert fingerprint({k: v.cuda() for k, v in sd.items()}) == fingerprint(sd)


# -------------------------------------------------------------------------------------- degradations


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradation_keeps_shape_and_range(name: str, photos: torch.Tensor) -> None:
    for severity in (0.0, 0.5, 1.0):
        y = DEGRADATIONS[name](photos, _gen(0), severity)
        assert y.shape == photos.shape and y.dtype == torch.float32
        assert y.min() >= 0 and y.max() <= 1
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_degradation_is_deterministic_per_seed_and_leaves_global_rng_alone(name: str, photos: torch.Tensor) -> None:
    fn = DEGRADATIONS[name]
    state = torch.random.get_rng_state()
    a = fn(photos, _gen(7), 0.6)
    b = fn(photos, _gen(7), 0.6)
    c = fn(photos, _gen(8), 0.6)
    assert torch.equal(torch.random.get_rng_state(), state)  # all randomness comes from the generator
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_higher_severity_moves_further_from_clean(name: str, photos: torch.Tensor) -> None:
    fn = DEGRADATIONS[name]
    for seed in range(3):
        mse = [_mse(fn(photos, _gen(seed), s), photos) for s in (0.0, 0.5, 1.0)]
        assert (mse[0] < mse[1]).all() and (mse[1] < mse[2]).all(), (seed, mse)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_per_image_severity_tensor(name: str, photos: torch.Tensor) -> None:
    fn = DEGRADATIONS[name]
    same = photos[:1].expand(2, -1, -1, -1).contiguous()
    y = fn(same, _gen(3), torch.tensor([0.0, 1.0]))
    mse = _mse(y, same)
    assert mse[0] < mse[1]
    # A [B] tensor of equal values is the same as the float.
    assert torch.equal(fn(photos, _gen(3), torch.tensor([0.4, 0.4])), fn(photos, _gen(3), 0.4))


@pytest.mark.parametrize("name", DEGRADATIONS)
@pytest.mark.parametrize(
    "severity", [1.5, -0.1, torch.tensor([0.5, 0.5, 0.5]), torch.tensor([[0.5], [0.5]]), torch.tensor([0.2, 1.2])],
    ids=["1.5", "-0.1", "shape3", "shape2x1", "one-out-of-range"],
)
def test_bad_severity_raises_value_error(name: str, severity, photos: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="severity"):
        DEGRADATIONS[name](photos, _gen(0), severity)


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_nan_severity_raises_value_error(name: str, photos: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="severity"):
        DEGRADATIONS[name](photos, _gen(0), torch.tensor([0.5, float("nan")]))


def test_gaussian_noise_sigma_is_severity_times_50_over_255() -> None:
    grey = torch.full((2, 3, 64, 64), 0.5)
    for severity, sigma in ((0.5, 25 / 255), (0.2, 10 / 255)):
        y = D.noise(grey, _gen(0), severity, kind="gaussian")
        assert abs(y.std().item() - sigma) < 0.05 * sigma
        assert abs(y.mean().item() - 0.5) < 0.05 * sigma


def test_poisson_gaussian_noise_matches_at_mid_grey_and_grows_with_signal() -> None:
    grey = torch.full((2, 3, 64, 64), 0.5)
    y = D.noise(grey, _gen(0), 0.5, kind="poisson_gaussian")
    assert abs(y.std().item() - 25 / 255) < 0.05 * 25 / 255
    dark = D.noise(torch.full((2, 3, 64, 64), 0.15), _gen(0), 0.5, kind="poisson_gaussian")
    bright = D.noise(torch.full((2, 3, 64, 64), 0.85), _gen(0), 0.5, kind="poisson_gaussian")
    assert dark.std() < 0.8 * bright.std()


@pytest.mark.parametrize("fn, kind", [(D.noise, "uniform"), (D.blur, "gaussian")])
def test_unknown_kind_raises(fn, kind: str, photos: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=kind):
        fn(photos, _gen(0), 0.5, kind=kind)


def test_lowlight_darkens(photos: torch.Tensor) -> None:
    for seed in range(3):
        y = D.lowlight(photos, _gen(seed), 0.5)
        assert (y.flatten(1).mean(1) < photos.flatten(1).mean(1)).all()
        darker = D.lowlight(photos, _gen(seed), 1.0)
        assert (darker.flatten(1).mean(1) < y.flatten(1).mean(1)).all()


def test_haze_lifts_the_dark_channel_and_lowers_contrast(photos: torch.Tensor) -> None:
    for seed in range(3):
        y = D.haze(photos, _gen(seed), 0.5)
        dark_in, dark_out = photos.amin(1), y.amin(1)  # dark channel [B, H, W]
        assert (dark_out.flatten(1).mean(1) > dark_in.flatten(1).mean(1) + 0.05).all()
        assert (dark_out.flatten(1).amin(1) > dark_in.flatten(1).amin(1)).all()
        assert (y.flatten(1).std(1) < photos.flatten(1).std(1)).all()


def test_rain_at_zero_severity_brightens_black_only_in_streaks() -> None:
    black = torch.zeros(2, 3, 128, 128)
    y = D.rain(black, _gen(0), 0.0)  # no veil at severity 0
    changed = (y > 0).any(1).float().flatten(1).mean(1)
    assert ((changed > 0.01) & (changed < 0.9)).all(), changed
    assert (y.flatten(1).amax(1) > 0.2).all()  # visible streaks


def test_rain_at_half_severity_has_a_flat_veil_and_localized_streaks() -> None:
    black = torch.zeros(2, 3, 128, 128)
    y = D.rain(black, _gen(0), 0.5)
    floor = y.amin(dim=(1, 2, 3), keepdim=True)  # the veil lifts black uniformly
    assert (floor > 0).all()
    above = ((y - floor).amax(1) > 10 / 255).float().flatten(1).mean(1)
    assert ((above > 0.01) & (above < 0.9)).all(), above


def test_rain_never_darkens_pixels_below_the_veil_level(photos: torch.Tensor) -> None:
    x = photos * 0.85  # screen blend and a veil towards 0.85 can only brighten these
    for seed in range(3):
        y = D.rain(x, _gen(seed), 0.7)
        assert (y >= x - 1e-6).all()


def test_blur_kernels_are_normalized_non_negative_and_centred() -> None:
    sev = torch.tensor([0.0, 0.3, 0.7, 1.0])
    r = torch.arange(31, dtype=torch.float32) - 15
    for k in (D.motion_kernels(sev, _gen(0)), D.defocus_kernels(sev)):
        assert k.shape == (4, 31, 31)
        assert (k >= 0).all()
        torch.testing.assert_close(k.sum(dim=(-2, -1)), torch.ones(4), atol=1e-5, rtol=0)
        cy = (k.sum(-1) * r).sum(-1)
        cx = (k.sum(-2) * r).sum(-1)
        assert cy.abs().max() < 0.1 and cx.abs().max() < 0.1
    disk = D.defocus_kernels(sev)
    support = (disk > 0).flatten(1).sum(1)
    assert (support[1:] > support[:-1]).all()  # radius grows with severity
    torch.testing.assert_close(disk, disk.flip(-1).transpose(-1, -2))  # round


def _thinness(k: torch.Tensor) -> torch.Tensor:
    """Minor over major axis of each kernel's spread (second moments): ~0 for a line, 1 for a round blob."""
    r = torch.arange(k.shape[-1], dtype=torch.float32) - (k.shape[-1] - 1) / 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    mx, my = (k * xx).sum((-2, -1)), (k * yy).sum((-2, -1))
    cxx, cyy = (k * xx * xx).sum((-2, -1)) - mx**2, (k * yy * yy).sum((-2, -1)) - my**2
    cxy = (k * xx * yy).sum((-2, -1)) - mx * my
    half, root = (cxx + cyy) / 2, (((cxx - cyy) / 2) ** 2 + cxy**2).sqrt()
    return ((half - root).clamp_min(0) / (half + root)).sqrt()


def test_camera_motion_is_hand_shake_as_well_as_smooth_arcs() -> None:
    """#14: a real shaken camera's path wanders and turns back (Boracchi & Foi 2012), unlike a line or an arc.
    Half of the motion kernels are such paths: their spread across the main direction is several times an
    arc's, and only they spread that wide."""
    sev = torch.full((64,), 0.8)
    arcs, shake = _thinness(D.curved_kernels(sev, _gen(0))), _thinness(D.shake_kernels(sev, _gen(0)))
    assert arcs.max() < 0.2 and shake.median() > 2.5 * arcs.median(), (arcs, shake)
    wide = (_thinness(D.motion_kernels(sev, _gen(1))) > arcs.max()).float().mean()
    assert 0.25 < wide < 0.75, wide
    span = [(D.shake_kernels(torch.full((16,), s), _gen(2)) > 1e-3).any(-2).sum(-1).float().mean() for s in (0.1, 1.0)]
    assert span[1] > 2 * span[0], span  # the shake grows with the severity


def test_blur_keeps_a_flat_image_flat() -> None:
    flat = torch.full((2, 3, 40, 40), 0.3)
    for kind in ("motion", "defocus", "random"):
        torch.testing.assert_close(D.blur(flat, _gen(0), 1.0, kind=kind), flat, atol=1e-5, rtol=0)


def test_jpeg_makes_8x8_blocks_and_loses_more_at_low_quality(photos: torch.Tensor) -> None:
    big = F.interpolate(photos, size=(64, 64), mode="bilinear", align_corners=False)
    high, low = D.jpeg(big, _gen(0), 0.0), D.jpeg(big, _gen(0), 1.0)
    assert torch.equal(low, (low * 255).round() / 255)  # 8-bit output, as a decoder gives
    assert (_mse(high, big) < 0.2 * _mse(low, big)).all()
    # Quantization error jumps across block edges: at low quality, neighbouring pixels differ more
    # across the 8-pixel grid than inside a block.
    err = low - big
    step = (err[..., 1:] - err[..., :-1]).abs().mean((0, 1, 2))  # [63]: between column j and j+1
    across = step[7::8].mean()
    inside = torch.cat([step[k::8] for k in range(7)]).mean()
    assert across > 1.3 * inside


def test_libjpeg_variant_loses_more_at_low_quality_and_differs_from_the_torch_codec(photos: torch.Tensor) -> None:
    big = F.interpolate(photos, size=(64, 64), mode="bilinear", align_corners=False)
    high, low = D.jpeg_codec(big, _gen(0), 0.0), D.jpeg_codec(big, _gen(0), 1.0)
    assert torch.equal(low, (low * 255).round() / 255)
    assert (_mse(high, big) < 0.2 * _mse(low, big)).all()
    ours = D.jpeg(big, _gen(0), 1.0)  # same severity, same quality drawn: another implementation's rounding
    assert (_mse(low, ours) > 1e-5).all()


def _pil_jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((x * 255).round().byte().permute(1, 2, 0).numpy()).save(buf, "JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buf))).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_blockiness_finds_the_jpeg_grid_and_nothing_else(name: str) -> None:
    """Photos that never went through JPEG measure about 1; libjpeg at quality 30 far above the JPEG
    adapter's ramp (core.routing.Detected), also cropped off the grid; noise and rain streaks do not count."""
    from air_restore.core.blockiness import blockiness
    from air_restore.core.routing import Detected

    lo, hi = Detected().ramp
    x = torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)())).permute(2, 0, 1).float() / 255
    assert blockiness(x) < 1.1
    q30, q50, q90 = (blockiness(_pil_jpeg(x, q)) for q in (30, 50, 90))
    assert q30 > q50 > q90 and q30 > hi + 1
    assert blockiness(_pil_jpeg(x, 30)[:, 3:, 5:]) > hi + 1  # the grid's phase is searched
    for synth in (D.noise, D.rain, D.blur):
        assert blockiness(synth(x[None], _gen(0), 0.5)[0]) < lo
    assert Detected().measured(_pil_jpeg(x, 30)) == 1.0 and Detected().measured(x) == 0.0


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_a_jpeg_of_a_noisy_photo_counts_as_compressed(name: str) -> None:
    """Noise saved as a JPEG (quality 85) hides the grid from the pixel steps, but not from the DCT: on the grid
    the codec zeroed most high frequencies. Noise alone and a photo that never went through JPEG read about 1."""
    from air_restore.core.blockiness import blockiness, compression, quantization
    from air_restore.core.routing import Detected

    x = torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)())).permute(2, 0, 1).float() / 255
    noisy = ((x + torch.randn(x.shape, generator=_gen(0)) * 20 / 255).clamp(0, 1) * 255).round() / 255
    saved = _pil_jpeg(noisy, 85)
    assert blockiness(saved) < Detected().ramp[0]  # the grid's steps alone would give it weight 0
    assert quantization(saved) > 8 and quantization(saved[:, 3:, 5:]) > 8  # the phase is searched
    assert quantization(x) < 1.5 and quantization(noisy) < 1.5
    assert compression(saved) >= blockiness(saved) and Detected().measured(saved) > 0.75
    assert Detected().measured(x) == 0.0 and Detected().measured(noisy) == 0.0


def test_a_small_noisy_crop_does_not_read_as_a_jpeg_and_a_small_jpeg_still_does() -> None:
    """On a 96 px crop of a noisy photo the flat places are few, and the largest of the 8 phases' mean steps stood out
    by chance: it read as blocky as a JPEG, and the jpeg adapter ran on it. Now a ratio counts in proportion to the
    flat steps behind it; a JPEG's crop of the same size (flat places aplenty) still reads far above the ramp."""
    from air_restore.core.blockiness import blockiness
    from air_restore.core.routing import Detected

    lo, hi = Detected().ramp
    noisy, saved, before = [], [], []
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]):
        x = torch.from_numpy(np.ascontiguousarray(getattr(skdata, name)())).permute(2, 0, 1).float() / 255
        crop = x[:, 100:196, 100:196]
        n = ((crop + torch.randn(crop.shape, generator=_gen(i)) * 25 / 255).clamp(0, 1) * 255).round() / 255
        noisy.append(blockiness(n))
        before.append(blockiness(n, min_flat=1))  # every ratio in full, as it was
        saved.append(blockiness(_pil_jpeg(x, 50)[:, 100:196, 100:196]))
    assert max(noisy) < lo < max(before)
    assert min(saved) > hi


def test_the_jpeg_rule_stands_down_on_scene_wide_degradations() -> None:
    """Blended with the haze, rain or low-light adapter the jpeg adapter undoes their correction, so its measured
    weight stands only where the head sees none of them and the estimator does not find the photo dark."""
    from air_restore.core.routing import Detected

    rule = Detected()
    assert rule.share({"noise": 0.9, "rain": 0.2}, {"clean": 0.6, "rain": 0.05, "blur": 0.3}) == 1.0
    assert rule.share({"lowlight": rule.est_limit}, {"clean": 0.97}) == 0.0  # dark: the head misses it
    for cls in rule.unless_head:
        assert rule.share({}, {cls: rule.head_ramp[1]}) == 0.0
        assert 0.0 < rule.share({}, {cls: sum(rule.head_ramp) / 2}) < 1.0


def test_the_jpeg_rule_makes_way_for_an_adapter_that_cleans_blocks_already() -> None:
    """realnoise, learnt from camera JPEGs, undoes their blocks too: the jpeg adapter's measured weight shrinks
    by realnoise's weight, so the two never clean the same blocks twice."""
    from air_restore.core.routing import Detected

    rule = Detected()
    assert ("realnoise", 0.0, 1.0) in rule.yields_to
    assert rule.share({"realnoise": 0.0, "blur": 0.3, "noise": 0.8}, {"clean": 0.9}) == 1.0
    assert rule.share({"realnoise": 0.25}, {"clean": 0.9}) == pytest.approx(0.75)
    assert rule.share({"realnoise": 1.0}, {"clean": 0.9}) == 0.0
    # It compounds with the head's ramp: half of that and a quarter of realnoise leave 0.375.
    assert rule.share({"realnoise": 0.25}, {"rain": sum(rule.head_ramp) / 2}) == pytest.approx(0.375)


def test_the_jpeg_rule_makes_way_for_the_blur_adapter_on_a_blurred_photo() -> None:
    """Trained on JPEGs of sharp photos, the jpeg adapter undoes the deblurring of a blurred JPEG: its weight falls
    to 0 as the estimator's blur weight rises past what a heavy JPEG of a sharp photo gets (≤ 0.35)."""
    from air_restore.core.routing import Detected

    rule = Detected()
    assert rule.share({"blur": 0.23}, {"clean": 0.9}) == 1.0  # a libjpeg q20 photo reads a little blurred
    assert rule.share({"blur": 0.35}, {"clean": 0.9}) == 1.0
    assert 0.0 < rule.share({"blur": 0.45}, {"clean": 0.9}) < 1.0
    assert rule.share({"blur": 0.6}, {"clean": 0.9}) == 0.0
    # It compounds with realnoise's share: half of each leaves a quarter.
    assert rule.share({"blur": 0.475, "realnoise": 0.5}, {"clean": 0.9}) == pytest.approx(0.25)


def test_the_jpeg_rule_makes_way_for_rain_and_snow_the_head_misses() -> None:
    """On rainy JPEGs the head's rain class can stay under its ramp, and it has no snow class: the estimator's rain
    or snow weight past what a JPEG of a clear photo gets (rain ≤ 0.37) takes the jpeg weight to 0."""
    from air_restore.core.routing import Detected

    rule = Detected()
    head = {"clean": 0.9, "rain": 0.05}
    for name in ("rain", "snow"):
        assert rule.share({name: 0.3}, head) == 1.0
        assert 0.0 < rule.share({name: 0.4}, head) < 1.0
        assert rule.share({name: 0.5}, head) == 0.0
    assert rule.share({"rain": 0.4, "snow": 0.4}, head) == pytest.approx(0.25)  # the shares compound


def test_camera_noise_leaves_chroma_blotches_not_just_pixel_noise() -> None:
    grey = torch.full((2, 3, 64, 64), 0.5)
    y = D.camera_noise(grey, _gen(0), 1.0)
    # Demosaicing spreads each raw sample over its neighbours: the noise is correlated between
    # adjacent pixels, which i.i.d. noise of the same strength is not.
    n = y - y.mean((2, 3), keepdim=True)
    corr = (n[..., 1:] * n[..., :-1]).mean() / n.square().mean()
    assert corr > 0.3
    iid = D.noise(grey, _gen(0), 0.5, kind="gaussian") - 0.5
    assert (iid[..., 1:] * iid[..., :-1]).mean() / iid.square().mean() < 0.05
    chroma = y - y.mean(1, keepdim=True)
    assert chroma.std() > 0.01  # colour noise, not only luminance


def test_mono_noise_is_the_same_in_every_channel_and_keeps_grey_photos_grey() -> None:
    grey = torch.full((64, 3, 48, 48), 0.5)
    y = D.mono_noise(grey, _gen(0), 0.5)
    n = (y - grey).flatten(2)  # [B, 3, HW]
    n = n - n.mean(2, keepdim=True)
    corr = (n[:, 0] * n[:, 1]).mean(1) / (n[:, 0].std(1) * n[:, 1].std(1))
    assert corr.min() > 0.45  # luminance noise: channel correlation 0.5–1 (per-channel noise: about 0)
    still_grey = (y[:, 0] == y[:, 1]).all((1, 2)) & (y[:, 1] == y[:, 2]).all((1, 2))
    assert 20 <= int(still_grey.sum()) <= 44  # half the photos keep correlation 1: a grey photo stays grey
    sigma = (y - grey).flatten(1).std(1)
    assert (sigma - 25 / 255).abs().max() < 0.35 * 25 / 255  # σ = severity · 50/255 (the Poisson–Gaussian variant
    # has the same std at mid-grey)
    lag = (n[..., 1:] * n[..., :-1]).mean((1, 2)) / n.square().mean((1, 2))
    assert 8 <= int((lag > 0.2).sum()) <= 32  # film-like grain, spread over neighbours, on about 30%
    assert int((lag < 0.05).sum()) >= 32  # the rest pixel by pixel
    iid = D.noise(grey, _gen(0), 0.5) - grey
    iid = iid.flatten(2) - iid.flatten(2).mean(2, keepdim=True)
    assert ((iid[:, 0] * iid[:, 1]).mean(1) / (iid[:, 0].std(1) * iid[:, 1].std(1))).abs().max() < 0.1


def test_drizzle_keeps_the_photo_brightness_except_in_streaks(photos: torch.Tensor) -> None:
    y = D.drizzle(photos, _gen(0), 0.5)
    diff = y - photos
    assert (diff >= -1e-6).all()  # additive streaks only: nothing gets darker
    assert ((diff > 0.02).float().mean((1, 2, 3)) < 0.3).all()  # thin streaks, not a veil


def test_dim_darkens_and_flat_haze_lifts_the_dark_channel(photos: torch.Tensor) -> None:
    for seed in range(3):
        assert (D.dim(photos, _gen(seed), 0.7).mean((1, 2, 3)) < photos.mean((1, 2, 3))).all()
        hazy = D.flat_haze(photos, _gen(seed), 0.7)
        assert (hazy.amin(1).mean((1, 2)) > photos.amin(1).mean((1, 2))).all()


def test_widened_families_cover_every_class_and_draw_each_variant(photos: torch.Tensor) -> None:
    from air_restore.core.families import FAMILIES, family, widened

    classes = AirUNetConfig().classes
    synths, stack = widened(classes)
    assert len(synths) == len(classes) - 1 and set(FAMILIES) == set(classes[1:])
    batch = photos.repeat(8, 1, 1, 1)  # 16 images: every variant of a 3-way family is drawn
    for name in classes[1:]:
        out = family(name)(batch, _gen(1), torch.full((16,), 0.6))
        assert out.shape == batch.shape and torch.isfinite(out).all()
        assert (_mse(out, batch) > 1e-5).all()  # every image was degraded
        assert torch.equal(out, family(name)(batch, _gen(1), torch.full((16,), 0.6)))
    assert (_mse(stack(batch, _gen(2), torch.full((16,), 0.4)), batch) > 1e-5).all()
    with pytest.raises(ValueError, match="snow"):
        family("snow")


def test_widened3_low_light_is_clearly_dark_where_widened2_overlapped_dim_targets(photos: torch.Tensor) -> None:
    from air_restore.core.families import family, vary_exposure, widened

    batch = photos.repeat(8, 1, 1, 1)
    mild = torch.full((16,), 0.1)  # the mildest severity CutMix draws
    old = family("lowlight", "widened2")(batch, _gen(3), mild).mean((1, 2, 3))
    new = family("lowlight", "widened3")(batch, _gen(3), mild).mean((1, 2, 3))
    assert (new < old).all()
    # The dim clean targets (kept dim, not brightened) overlapped the old family; the new one stays below them.
    targets = vary_exposure(batch, _gen(4), p=1.0).mean((1, 2, 3))
    assert new.max() < targets.min() < old.max()
    # The other classes are the same synthesizers in both recipes.
    assert torch.equal(family("rain", "widened3")(batch, _gen(5), mild), family("rain", "widened2")(batch, _gen(5), mild))
    with pytest.raises(ValueError, match="widened9"):
        widened(AirUNetConfig().classes, "widened9")
    with pytest.raises(ValueError, match="widened9"):
        family("noise", "widened9")


def test_widened4_low_light_sits_at_an_absolute_darkness_whatever_the_crop(photos: torch.Tensor) -> None:
    """widened3's low light dims relative to the crop, so a bright crop stayed as bright as PolyU's dim, noisy
    photos (which v2 then brightened); widened4 ends every low-light crop at mean ≤ 0.12, darker with severity."""
    from air_restore.core.families import DARK_MEANS, family

    batch = torch.cat([photos, photos.clamp(0.5, 1)]).repeat(8, 1, 1, 1)  # some crops bright all over
    for s, most in ((0.1, DARK_MEANS[0] - 0.1 * (DARK_MEANS[0] - DARK_MEANS[1])), (1.0, DARK_MEANS[1])):
        sev = torch.full((len(batch),), s)
        old = family("lowlight", "widened3")(batch, _gen(3), sev).mean((1, 2, 3))
        new = family("lowlight", "widened4")(batch, _gen(3), sev).mean((1, 2, 3))
        assert old.max() > most + 0.05  # the old family let bright crops stay bright
        assert new.max() <= most * 1.02 and (new <= old + 1e-6).all()
    # A crop already darker than its target is left as its variant made it.
    dark = (batch * 0.05).clamp(0, 1)
    sev = torch.full((len(batch),), 0.1)
    assert torch.allclose(family("lowlight", "widened4")(dark, _gen(6), sev),
                          family("lowlight", "widened3")(dark, _gen(6), sev).clamp(0, 1), atol=1e-5)


def test_vary_exposure_darkens_only_the_picked_share_of_targets(photos: torch.Tensor) -> None:
    from air_restore.core.families import vary_exposure

    batch = photos.repeat(20, 1, 1, 1)
    out = vary_exposure(batch, _gen(0), 0.25)
    changed = (out - batch).abs().flatten(1).amax(1) > 0
    assert 3 <= int(changed.sum()) <= 18  # about a quarter of 40
    assert (out[changed].mean((1, 2, 3)) < batch[changed].mean((1, 2, 3))).all()
    assert torch.equal(out[~changed], batch[~changed])
    assert torch.equal(vary_exposure(batch, _gen(0), 0.0), batch)


def test_widened5_gives_some_targets_a_flat_sky_and_compresses_haze_afterwards(photos: torch.Tensor) -> None:
    """Real fog is mostly featureless, and base v1 and the widened4 candidate blot it (NOTES.md): widened5 gives a
    share of the clean targets a flat, bright sky above a horizon (the top rows of such a crop are flat where the
    photo's were not), and saves about half of widened4's hazy crops as JPEGs afterwards."""
    from air_restore.core.families import RECIPES, family, with_sky

    assert "widened5" in RECIPES
    batch = photos.repeat(20, 1, 1, 1)
    out = with_sky(batch, _gen(0), 0.5)
    changed = (out - batch).abs().flatten(1).amax(1) > 0
    assert 8 <= int(changed.sum()) <= 32  # about half of 40
    assert torch.equal(out[~changed], batch[~changed]) and torch.equal(with_sky(batch, _gen(0), 0.0), batch)
    top = out[changed][..., :4, :]  # the sky is at least the top 20% of the height
    assert top.std((2, 3)).max() < 0.05 < batch[changed][..., :4, :].std((2, 3)).max()
    assert top.mean() > 0.6  # a bright sky

    # About half of the hazy crops are then saved as JPEGs: decoded, they sit on the 8-bit grid, as no crop of
    # widened4's haze does.
    sev = torch.full((len(batch),), 0.5)
    on_grid = [int(((x * 255 - (x * 255).round()).abs().flatten(1).amax(1) < 1e-3).sum())
               for x in (family("haze", r)(batch, _gen(7), sev) for r in ("widened4", "widened5"))]
    assert on_grid[0] == 0 and 8 <= on_grid[1] <= 32


def test_srgb_linear_round_trip() -> None:
    x = torch.linspace(0, 1, 1001)
    torch.testing.assert_close(D.linear_to_srgb(D.srgb_to_linear(x)), x, atol=1e-5, rtol=0)


# -------------------------------------------------------------------------------------------- cutmix


def test_cutmix_with_real_degradations(photos: torch.Tensor) -> None:
    clean = torch.cat([photos, photos.flip(-1)])
    seen_clean = 0
    for seed in range(4):
        res = cutmix_batch(clean, SYNTHS, _gen(seed), p_clean=0.5)
        assert res.degraded.shape == clean.shape
        assert res.labels.shape == (4, 48, 48) and res.labels.dtype == torch.long
        assert res.labels.min() >= 0 and res.labels.max() <= len(SYNTHS)
        assert res.degraded.min() >= 0 and res.degraded.max() <= 1
        is_clean = (res.labels == 0).unsqueeze(1).expand_as(clean)
        assert torch.equal(res.degraded[is_clean], clean[is_clean])
        seen_clean += int(is_clean.sum())
        assert not torch.equal(res.degraded[~is_clean], clean[~is_clean])
    assert seen_clean > 0  # the check above was exercised


def _constant_synth(value: float):
    return lambda x, g, severity: torch.full_like(x, value)


def test_cutmix_labels_say_which_synthesizer_made_each_pixel(photos: torch.Tensor) -> None:
    values = [0.11, 0.22, 0.33, 0.44, 0.55]
    clean = torch.cat([photos, photos])
    res = cutmix_batch(clean, [_constant_synth(v) for v in values], _gen(1), p_clean=0.3, p_uniform=0.0)
    assert len(res.labels.unique()) >= 3
    for k, v in enumerate(values, start=1):
        region = (res.labels == k).unsqueeze(1).expand_as(clean)
        assert (res.degraded[region] == v).all()
    region = (res.labels == 0).unsqueeze(1).expand_as(clean)
    assert torch.equal(res.degraded[region], clean[region])


def test_cutmix_stacked_degradation_keeps_the_first_label(photos: torch.Tensor) -> None:
    res = cutmix_batch(photos, [_constant_synth(0.2), _constant_synth(0.4)], _gen(0),
                       stack_with=lambda d, g, s: d + 0.5, p_stack=1.0, p_clean=0.3)
    assert set(res.labels.unique().tolist()) >= {1, 2}
    for k, v in ((1, 0.7), (2, 0.9)):
        region = (res.labels == k).unsqueeze(1).expand_as(photos)
        torch.testing.assert_close(res.degraded[region], torch.full_like(res.degraded[region], v))


def test_cutmix_uniform_crops_have_a_single_label(photos: torch.Tensor) -> None:
    clean = torch.cat([photos] * 3)
    for seed in range(3):
        res = cutmix_batch(clean, SYNTHS, _gen(seed), p_uniform=1.0)
        for lab in res.labels:
            assert len(lab.unique()) == 1
        res = cutmix_batch(clean, SYNTHS, _gen(seed), p_uniform=1.0, p_clean=0.0)
        assert (res.labels > 0).all()


def test_cutmix_draws_a_whole_crop_class_over_whole_crops_only(photos: torch.Tensor) -> None:
    """An exposure covers the whole frame (widened6): a whole-crop class is never pasted as a region, nor has one
    pasted over it, so every crop that shows it is that class all over; other crops still get their regions."""
    clean = photos[:1].repeat(200, 1, 1, 1)
    synths = [_constant_synth(v) for v in (0.2, 0.4, 0.6)]

    def crops_with_3(**kw) -> tuple[int, int]:
        """(crops showing class 3, those of them that are class 3 all over)."""
        labels = cutmix_batch(clean, synths, _gen(3), p_clean=0.2, p_uniform=0.0, **kw).labels.flatten(1)
        shows = (labels == 3).any(1)
        return int(shows.sum()), int((labels[shows] == 3).all(1).sum())

    shown, whole = crops_with_3()
    assert shown > 100 and whole < shown / 4  # pasted as regions and under them, mostly mixed
    shown, whole = crops_with_3(whole_crop=(3,))
    assert 40 < shown == whole
    labels = cutmix_batch(clean, synths, _gen(3), p_clean=0.2, p_uniform=0.0, whole_crop=(3,)).labels.flatten(1)
    mixed = (labels != labels[:, :1]).any(1)
    assert int(mixed.sum()) > 60  # the other crops keep their regions
    with pytest.raises(ValueError, match="no class for the regions"):
        cutmix_batch(clean[:2], synths, _gen(0), whole_crop=(1, 2, 3))


def test_widened6_draws_low_light_over_whole_crops_only() -> None:
    """widened6 is widened5 with low light over whole crops only (NOTES.md: the widened4 candidate brightens whatever
    patch its head reads as dark and noisy, into blotches on real dim photos)."""
    from air_restore.core.families import RECIPES, whole_crop

    classes = AirUNetConfig().classes
    assert "widened6" in RECIPES
    assert whole_crop(classes, "widened6") == (classes.index("lowlight"),)
    assert whole_crop(classes, "widened5") == ()


def test_widened6_shuffles_the_colours_of_half_the_crops(photos: torch.Tensor) -> None:
    """The training photos' shadows are green; half of widened6's clean crops have their colour channels reordered
    (NOTES.md), the other half are left as they are, and earlier recipes draw exactly what they drew before."""
    from air_restore.core.families import COLOUR_SHUFFLE, channel_orders
    from air_restore.core.training.base import TrainBaseConfig, _cutmix_crops

    assert COLOUR_SHUFFLE == {"widened6": 0.5, "widened7": 0.5}
    order = channel_orders(4000, _gen(0), 0.5)
    kept = float((order == torch.tensor([0, 1, 2])).all(1).float().mean())
    assert abs(kept - (0.5 + 0.5 / 6)) < 0.03 and sorted(order[0].tolist()) == [0, 1, 2]
    assert len({tuple(o) for o in order.tolist()}) == 6
    assert (channel_orders(50, _gen(0), 0.0) == torch.tensor([0, 1, 2])).all()
    data = (photos * 255).round().to(torch.uint8)
    cfg = TrainBaseConfig(batch_size=6, crop=32, model=TINY)
    synths = [lambda x, g, s: x] * (len(TINY.classes) - 1)  # nothing degraded: the crops come back as drawn
    plain = _cutmix_crops(data, cfg, _gen(3), synths, None)[0]
    same = _cutmix_crops(data, cfg, _gen(3), synths, None, colour_shuffle=0.0)[0]
    assert torch.equal(plain, same)
    shuffled = _cutmix_crops(data, cfg, _gen(3), synths, None, colour_shuffle=1.0)[0]
    assert torch.equal(shuffled.sort(1).values, plain.sort(1).values)  # the same pixels, channels reordered
    assert not torch.equal(shuffled, plain)


def test_widened7_adds_luminance_noise_and_grey_crops(photos: torch.Tensor) -> None:
    """widened7 is widened6 with luminance noise in the noise family and 15% of the clean crops grey (v1's head reads
    a noisy grey photo as clean; NOTES.md); earlier recipes draw exactly what they drew before."""
    from air_restore.core.families import FAMILIES_5, GREY, RECIPE_FAMILIES, family, luma, whole_crop
    from air_restore.core.training.base import TrainBaseConfig, _cutmix_crops

    classes = AirUNetConfig().classes
    assert whole_crop(classes, "widened7") == whole_crop(classes, "widened6")
    assert {k: v for k, v in RECIPE_FAMILIES["widened7"].items() if k != "noise"} == \
        {k: v for k, v in FAMILIES_5.items() if k != "noise"}
    assert D.mono_noise in RECIPE_FAMILIES["widened7"]["noise"][0]
    assert D.mono_noise not in RECIPE_FAMILIES["widened6"]["noise"][0]
    grey = torch.full((400, 3, 16, 16), 0.5)

    def correlated(recipe: str) -> int:
        """How many of the 400 draw noise whose channels go together (camera noise's demosaicing does it too)."""
        n = (family("noise", recipe)(grey, _gen(0), 0.5) - grey).flatten(2)
        n = n - n.mean(2, keepdim=True)
        return int(((n[:, 0] * n[:, 1]).mean(1) / (n[:, 0].std(1) * n[:, 1].std(1)).clamp_min(1e-8) > 0.45).sum())

    assert correlated("widened7") >= correlated("widened6") + 35  # a fifth more draw luminance noise (80 of 400)
    assert GREY == {"widened7": 0.15}
    data = (photos * 255).round().to(torch.uint8)
    cfg = TrainBaseConfig(batch_size=200, crop=16, model=TINY)
    synths = [lambda x, g, s: x] * (len(TINY.classes) - 1)  # nothing degraded: the crops come back as drawn
    plain = _cutmix_crops(data, cfg, _gen(3), synths, None)[0]
    assert torch.equal(plain, _cutmix_crops(data, cfg, _gen(3), synths, None, grey=0.0)[0])
    greyed = _cutmix_crops(data, cfg, _gen(3), synths, None, grey=0.15)[0]
    turned = ~torch.isclose(greyed, plain).flatten(1).all(1)
    assert 0.08 < float(turned.float().mean()) < 0.24
    torch.testing.assert_close(greyed[turned], luma(plain[turned]))


def test_cutmix_is_deterministic_per_seed(photos: torch.Tensor) -> None:
    a = cutmix_batch(photos, SYNTHS, _gen(5))
    b = cutmix_batch(photos, SYNTHS, _gen(5))
    c = cutmix_batch(photos, SYNTHS, _gen(6))
    assert torch.equal(a.degraded, b.degraded) and torch.equal(a.labels, b.labels)
    assert not (torch.equal(a.degraded, c.degraded) and torch.equal(a.labels, c.labels))


# -------------------------------------------------------------------------------------------- tiling


@pytest.mark.parametrize("tile, overlap, align", [(128, 32, 8), (64, 16, 8), (96, 8, 1), (64, 0, 1), (48, 40, 8)])
@pytest.mark.parametrize("length", [1, 7, 64, 100, 135, 136, 137, 300, 517, 1000])
def test_tile_spans_cover_the_length_with_aligned_overlapping_tiles(length: int, tile: int, overlap: int, align: int) -> None:
    spans = tile_spans(length, tile, overlap, align=align)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for s, e in spans:
        assert s % align == 0
        assert 0 <= s < e <= length
        assert e - s <= tile + align - 1
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert s0 < s1 and e0 < e1
        assert e0 - s1 >= overlap  # overlap at least `overlap`, so also no gap
    # As few tiles as tiles of `tile` allow, all of one size (the last up to align - 1 longer): no tile is
    # computed larger than the length needs.
    fewest = 1 if length <= tile + align - 1 else -(-(length - overlap) // (tile - overlap))
    assert len(spans) <= fewest
    sizes = [e - s for s, e in spans]
    assert max(sizes) - min(sizes) <= align - 1


def test_tile_spans_share_the_length_evenly() -> None:
    # 2048 px in tiles of 512 with overlap 64: five tiles of 464, not four of 512 and a fifth overlapping
    # the fourth by 320 px (18% fewer pixels computed on a 2048² photo).
    assert tile_spans(2048, 512, 64, align=8) == [(0, 464), (400, 864), (800, 1264), (1200, 1664), (1584, 2048)]
    assert tile_spans(2048, 512, 128, align=8) == [(0, 512), (384, 896), (768, 1280), (1152, 1664), (1536, 2048)]


@pytest.mark.parametrize("tile, overlap, align", [(64, 64, 1), (32, 64, 1), (100, 16, 8), (64, 12, 8)])
def test_tile_spans_rejects_bad_tiles(tile: int, overlap: int, align: int) -> None:
    with pytest.raises(ValueError):
        tile_spans(300, tile, overlap, align=align)


def test_tiled_forward_blends_back_the_exact_image() -> None:
    torch.manual_seed(0)
    x = torch.rand(3, 300, 517)
    shapes, calls = [], []

    def fn(patch):
        shapes.append(tuple(patch.shape))
        return patch * 2, None

    res = tiled_forward(fn, x, tile=128, overlap=32, align=8, progress=lambda d, t: calls.append((d, t)))
    assert res.seg_probs is None
    assert res.image.shape == (3, 300, 517)
    torch.testing.assert_close(res.image, 2 * x, atol=1e-5, rtol=1e-5)
    n = len(tile_spans(300, 128, 32, align=8)) * len(tile_spans(517, 128, 32, align=8))
    assert len(shapes) == n and calls == [(i, n) for i in range(1, n + 1)]
    assert all(s[0] == 1 and s[1] == 3 and s[2] <= 135 and s[3] <= 135 for s in shapes)


def test_tiled_forward_blends_segmentation_probabilities() -> None:
    g = _gen(0)
    x = torch.rand(3, 150, 200, generator=g)

    def fn(patch):
        probs = torch.rand(1, 6, *patch.shape[-2:], generator=g).softmax(1)
        return patch, probs

    res = tiled_forward(fn, x, tile=64, overlap=16, align=8)
    assert res.seg_probs is not None and res.seg_probs.shape == (6, 150, 200)
    assert (res.seg_probs >= 0).all()
    torch.testing.assert_close(res.seg_probs.sum(0), torch.ones(150, 200), atol=1e-5, rtol=0)
    torch.testing.assert_close(res.image, x, atol=1e-5, rtol=1e-5)


def test_tiled_forward_has_no_seams_between_disagreeing_tiles() -> None:
    """Each tile returns a different flat value; the raised-cosine ramps over the 32-px overlap must
    turn every tile edge into a gradual transition (steepest step about π/(2·32) ≈ 0.05 of the jump,
    where hard edges would step by up to the whole jump)."""
    g = _gen(0)
    x = torch.rand(3, 300, 517)
    res = tiled_forward(lambda p: (torch.full_like(p, torch.rand((), generator=g).item()), None), x,
                        tile=128, overlap=32, align=8)
    im = res.image
    assert im.amax() - im.amin() > 0.3  # the tiles really disagree
    step = max((im[:, 1:] - im[:, :-1]).abs().max().item(), (im[:, :, 1:] - im[:, :, :-1]).abs().max().item())
    assert step < 0.06


def test_tiled_forward_batches_tiles_of_one_size_and_gives_the_same_output() -> None:
    """#15 item 3: with ``batch`` the tiles go to ``fn`` several at a time, never mixing sizes (the last row
    and column may be larger) and never more than asked; the blended output and the progress counts are
    those of one tile at a time."""
    g = _gen(0)
    x = torch.rand(3, 300, 517, generator=g)
    w = torch.rand(3, 1, 1, generator=g)

    def run(batch):
        shapes, calls = [], []

        def fn(patch):
            shapes.append(tuple(patch.shape))
            return patch * w, patch.mean(1, keepdim=True).softmax(1)

        res = tiled_forward(fn, x, tile=128, overlap=32, align=8, batch=batch,
                            progress=lambda d, t: calls.append((d, t)))
        return res, shapes, calls

    one, one_shapes, one_calls = run(1)
    many, shapes, calls = run(3)
    assert torch.equal(many.image, one.image) and torch.equal(many.seg_probs, one.seg_probs)
    n = len(one_shapes)
    assert sum(s[0] for s in shapes) == n and max(s[0] for s in shapes) == 3 and len(shapes) < n
    assert calls[-1] == (n, n) and [t for _, t in calls] == [n] * len(calls)
    assert [d for d, _ in calls] == sorted({d for d, _ in calls})  # strictly rising
    with pytest.raises(ValueError, match="batch"):
        tiled_forward(lambda p: (p, None), x, tile=128, overlap=32, batch=0)


def test_restore_in_batched_tiles_equals_one_tile_at_a_time_with_blended_adapters() -> None:
    """One image's adapter weights [1, K] apply to a batch of its tiles, merged or not."""
    from air_restore.core.lora import LoRAFactors, attach, blend

    model = AirUNet(config=AirUNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1)).eval()
    g = _gen(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.uniform_(0.5, 1.0, generator=g)
    convs = {n: m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in model.config.lora_targets}
    attach(model, "a", {n: LoRAFactors(torch.randn(2, c.in_channels, generator=g) * 0.3,
                                       torch.randn(c.out_channels, 2, generator=g) * 0.3, 1.0)
                        for n, c in convs.items()})
    x = torch.rand(3, 150, 230, generator=g)
    for mode in ("unmerged", "merged"):
        with blend(model, torch.tensor([[0.7]]), mode=mode):
            one = restore(model, x, tile=64, overlap=16, gate=True, tile_batch=1)
            many = restore(model, x, tile=64, overlap=16, gate=True, tile_batch=4)
        torch.testing.assert_close(many.image, one.image, atol=1e-5, rtol=0)
    assert (one.image - restore(model, x, tile=64, overlap=16, gate=True).image).abs().max() > 1e-3  # adapter on


def test_tile_batch_is_one_on_the_cpu_and_fills_half_the_free_gpu_memory() -> None:
    from air_restore.core.memory import MAX_TILE_BATCH, TILE_BYTES_PER_PIXEL, tile_batch

    assert tile_batch((768, 768), "cpu") == 1
    per_tile = TILE_BYTES_PER_PIXEL * 768 * 768
    assert tile_batch((768, 768), "cuda", free=8 * per_tile) == 4
    assert tile_batch((768, 768), "cuda", free=1e6) == 1
    assert tile_batch((768, 768), "cuda", free=1e15) == MAX_TILE_BATCH
    assert tile_batch((768, 768), "cuda", model_width=48, free=8 * per_tile) == 2  # twice the channels


def test_tiled_forward_with_one_tile_is_the_plain_call() -> None:
    x = torch.rand(3, 40, 56)
    res = tiled_forward(lambda p: (p.flip(-1), None), x, tile=64, overlap=16, align=8)
    assert torch.equal(res.image, x.flip(-1))


# ------------------------------------------------------------------------------------------- restore


@pytest.fixture(scope="module")
def shipped():
    from air_restore.registry.store import load_base

    model, _ = load_base()
    return model


@pytest.fixture(scope="module")
def noisy_pair() -> tuple[torch.Tensor, torch.Tensor]:
    clean = _photo(64, 96)
    return clean, D.noise(clean[None], _gen(0), 0.5, kind="gaussian")[0]


@pytest.fixture(scope="module")
def restored_whole(shipped, noisy_pair):
    return restore(shipped, noisy_pair[1], tile=512, overlap=128, explain=True)


def test_restore_output_shape_and_range(shipped, noisy_pair) -> None:
    res = restore(shipped, noisy_pair[1], tile=512, overlap=128)
    assert res.image.shape == (3, 64, 96) and res.image.dtype == torch.float32
    assert res.image.min() >= 0 and res.image.max() <= 1
    assert res.seg_probs is None


def test_restore_explain_gives_per_pixel_probabilities(restored_whole) -> None:
    probs = restored_whole.seg_probs
    assert probs is not None and probs.shape == (6, 64, 96)
    assert (probs >= 0).all()
    torch.testing.assert_close(probs.sum(0), torch.ones(64, 96), atol=1e-5, rtol=0)


def test_shipped_model_denoises_and_recognizes_noise(restored_whole, noisy_pair) -> None:
    clean, noisy = noisy_pair

    def psnr(a, b):
        return -10 * torch.log10((a - b).square().mean()).item()

    assert psnr(restored_whole.image, clean) > psnr(noisy, clean) + 2.0
    noise_class = 1  # AirUNetConfig.classes
    assert (restored_whole.seg_probs.argmax(0) == noise_class).float().mean() > 0.5


def test_tiled_restore_matches_whole_image_restore(shipped, noisy_pair, restored_whole) -> None:
    calls = []
    tiled = restore(shipped, noisy_pair[1], tile=64, overlap=16, explain=True, progress=lambda d, t: calls.append(t))
    assert calls and calls[-1] == 2  # 1 × 2 tiles, so the tiled path really ran
    diff = (tiled.image - restored_whole.image).abs()
    assert diff.max() < 0.02 and diff.mean() < 1e-3
    assert (tiled.seg_probs - restored_whole.seg_probs).abs().mean() < 5e-3


@pytest.mark.parametrize("shape", [(1, 3, 32, 32), (4, 32, 32), (32, 32)])
def test_restore_rejects_non_rgb_tensors(shipped, shape) -> None:
    with pytest.raises(ValueError, match="RGB"):
        restore(shipped, torch.rand(*shape))


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("bogus", "mps", ""):
        with pytest.raises(ValueError, match="unknown device"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device_cuda_without_gpu_is_a_clear_error(name: str) -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device(name)


def test_the_segmentation_head_runs_only_when_asked():
    """#15: restore() without explain skips the head; the image is bit-identical either way."""
    from air_restore.core.restore import restore
    from air_restore.registry.store import load_base

    model, _ = load_base(device="cpu")
    calls = []
    hook = model.seg_head.register_forward_hook(lambda *a: calls.append(1))
    x = torch.rand(3, 96, 80, generator=torch.Generator().manual_seed(0))
    plain = restore(model, x)
    assert calls == [] and plain.seg_probs is None
    explained = restore(model, x, explain=True)
    hook.remove()
    assert calls and explained.seg_probs.shape == (len(model.config.classes), 96, 80)
    assert torch.equal(plain.image, explained.image)


@pytest.mark.parametrize("clean_logit, expected", [(30.0, "input"), (-30.0, "network")])
def test_gate_keeps_the_input_exactly_where_the_head_sees_clean(clean_logit, expected):
    """restore(gate=True) outputs x + (1 − p_clean)·(network − x): a head certain of "clean" returns the
    input, a head certain of a degradation returns the network's image; tiles do not change that."""
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    with torch.no_grad():
        last = model.seg_head[-1]
        last.weight.zero_()
        last.bias.fill_(-clean_logit)
        last.bias[0] = clean_logit
        model.ending.weight.normal_(0, 0.05, generator=_gen(1))  # a network that changes the image
    x = _photo(40, 56)
    network = restore(model, x, tile=24, overlap=8).image
    gated = restore(model, x, tile=24, overlap=8, gate=True).image
    assert (network - x).abs().max() > 0.01
    want = x if expected == "input" else network
    assert torch.allclose(gated, want, atol=1e-5)


def test_gate_mixes_per_pixel_by_the_clean_probability():
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    with torch.no_grad():
        model.ending.weight.normal_(0, 0.05, generator=_gen(1))
    x = _photo(32, 32, "coffee")
    res = restore(model, x, explain=True)
    gated = restore(model, x, gate=True).image
    p = res.seg_probs[0:1]
    assert 0.05 < float(p.mean()) < 0.95  # a random head: neither all clean nor none
    assert torch.allclose(gated, x + (1 - p) * (res.image - x), atol=1e-5)


def test_the_gate_counts_a_class_as_clean_in_the_share_it_is_given():
    """``also_clean``: the gate keeps ``p_clean + share·p_class``; the explained and the plain paths (and tiles)
    give the same image, and a class the head does not have is refused by name."""
    from air_restore.core.errors import InvalidValueError

    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    with torch.no_grad():
        model.ending.weight.normal_(0, 0.05, generator=_gen(1))
    x = _photo(32, 32, "coffee")
    k = model.config.classes.index("lowlight")
    for tiles in ({}, {"tile": 24, "overlap": 8}):
        res = restore(model, x, explain=True, **tiles)
        p = res.seg_probs[0:1] + 0.5 * res.seg_probs[k : k + 1]
        for explain in (False, True):
            gated = restore(model, x, gate=True, also_clean={"lowlight": 0.5}, clean_ramp=None, explain=explain,
                            **tiles).image
            assert torch.allclose(gated, x + (1 - p) * (res.image - x), atol=1e-5), (tiles, explain)
    assert not torch.allclose(gated, restore(model, x, gate=True, clean_ramp=None).image, atol=1e-4)
    with pytest.raises(InvalidValueError, match="'dusk'"):
        restore(model, x, gate=True, also_clean={"dusk": 1.0})


def test_a_dark_area_the_estimator_calls_exposed_as_meant_is_kept(shipped):
    """The shipped base lifts a noisy black area it reads as low light (a night sky over a dim scene) towards
    grey; counting low light as clean (``core.routing.KeepDark``'s ``also_clean``) keeps those pixels."""
    g = _gen(0)
    x = _photo(512, 512) * 0.6
    x[:, :256] = (0.02 + 0.01 * torch.randn((3, 256, 512), generator=g)).clamp(0, 1)
    sky = (slice(None), slice(0, 240))
    lifted = restore(shipped, x, gate=True).image
    kept = restore(shipped, x, gate=True, also_clean={"lowlight": 1.0}).image
    assert float(lifted[sky].mean()) > 0.1 and float((kept - x)[sky].abs().mean()) < 0.01


def test_clean_share_ramps_between_its_two_points():
    from air_restore.core.restore import CLEAN_RAMP, clean_share

    lo, hi = CLEAN_RAMP
    assert clean_share(0.0) == 0.0 and clean_share(lo) == 0.0 and clean_share(hi) == 1.0 and clean_share(1.0) == 1.0
    assert clean_share((lo + hi) / 2) == pytest.approx(0.5)
    assert clean_share(0.7, (0.5, 0.9)) == pytest.approx(0.5)


@pytest.mark.parametrize("tile", [512, 24])
def test_a_photo_that_looks_clean_as_a_whole_keeps_more_of_its_input(tile):
    """Where the head's mean p_clean over the photo reaches the ramp, the gate keeps the input over the whole
    photo in proportion: keep = p_clean + (1 − p_clean)·clean_share(mean p_clean); `clean_ramp=None` is the
    per-pixel gate alone. The share is taken over the whole photo, not per tile."""
    from air_restore.core.restore import clean_share

    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    classes = len(TINY.classes)
    p = 0.7  # the head says "clean" with probability 0.7 at every pixel: logit log(p·(C−1)/(1−p)) against 0
    with torch.no_grad():
        last = model.seg_head[-1]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[0] = math.log(p * (classes - 1) / (1 - p))
        model.ending.weight.normal_(0, 0.05, generator=_gen(1))
    x = _photo(40, 56)
    # fp32: `auto` computes in bf16 on a CPU with native bf16 (AVX512_BF16), which this identity cannot hold to 1e-5.
    network = restore(model, x, tile=tile, overlap=8, precision="fp32").image
    assert (network - x).abs().max() > 0.01
    keep = p + (1 - p) * clean_share(p)
    assert 0 < clean_share(p) < 1
    gated = restore(model, x, tile=tile, overlap=8, gate=True, precision="fp32").image
    assert torch.allclose(gated, (x + (1 - keep) * (network - x)).clamp(0, 1), atol=1e-5)
    pixel = restore(model, x, tile=tile, overlap=8, gate=True, clean_ramp=None, precision="fp32").image
    assert torch.allclose(pixel, (x + (1 - p) * (network - x)).clamp(0, 1), atol=1e-5)


def test_strength_moves_the_output_along_the_restoration():
    """restore(strength=s) = x + s·(network − x): 0 gives the input back, 1 the network's image, and
    a value outside [0, 1] is refused."""
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    with torch.no_grad():
        model.ending.weight.normal_(0, 0.05, generator=_gen(1))
    x = _photo(40, 56)
    full = restore(model, x, tile=24, overlap=8).image
    assert (full - x).abs().max() > 0.01
    assert torch.allclose(restore(model, x, tile=24, overlap=8, strength=0.0).image, x, atol=1e-6)
    half = restore(model, x, tile=24, overlap=8, strength=0.5).image
    assert torch.allclose(half, (x + full) / 2, atol=1e-5)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidValueError, match="strength"):
            restore(model, x, strength=bad)


def test_channels_last_takes_the_fused_layer_norm_with_the_same_numbers():
    """#15: in channels-last layout LayerNorm2d runs torch's fused layer_norm; the results match the
    channels-first path (what training uses) within float rounding, for a block and the whole network."""
    from air_restore.core.arch import LayerNorm2d

    ln = LayerNorm2d(8)
    with torch.no_grad():
        ln.weight.normal_(generator=_gen(2))
        ln.bias.normal_(generator=_gen(3))
    x = torch.randn(2, 8, 12, 10, generator=_gen(4)) * 3 + 1
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(ln(cl), ln(x), atol=1e-5) and ln(cl).is_contiguous(memory_format=torch.channels_last)
    model = _randomize_residual_scales(AirUNet(config=TINY)).eval()
    img = _photo(40, 56)[None]
    with torch.no_grad():
        a = model(img).image
        b = model.to(memory_format=torch.channels_last)(img.contiguous(memory_format=torch.channels_last)).image
    assert torch.allclose(a, b, atol=1e-5)


def test_default_overlap_leaves_no_seam_on_a_noisy_photo(shipped) -> None:
    """The default overlap against the whole-image output on a noisy photo (upscaled, as a phone's digital
    zoom would), cut into tiles of 256 so that many pixels lie near a seam: the worst pixel, not only the
    mean. Measured on this photo: 64 px of overlap 0.24 of full scale off, 96 px 0.165, 128 px 0.075."""
    from air_restore.core.defaults import OVERLAP
    from air_restore.core.metrics import psnr

    a = torch.from_numpy(np.ascontiguousarray(skdata.astronaut())).permute(2, 0, 1).float() / 255
    clean = F.interpolate(a[None], size=(640, 640), mode="bicubic")[0].clamp(0, 1)
    x = D.noise(clean[None], _gen(0), 0.5, kind="gaussian")[0]
    whole = restore(shipped, x, tile=648, overlap=8).image
    tiled = restore(shipped, x, tile=256, overlap=OVERLAP).image
    assert psnr(tiled, whole).item() >= 45
    assert (tiled - whole).abs().max().item() < 0.1


# -------------------------------------------------------------------------------------------- runtime


def test_keep_freed_memory_takes_effect_on_linux_unless_turned_off(monkeypatch) -> None:
    import platform

    from air_restore.core import runtime

    monkeypatch.setenv(runtime.SYSTEM_MALLOC_ENV, "1")
    assert runtime.keep_freed_memory.__wrapped__() is False
    monkeypatch.delenv(runtime.SYSTEM_MALLOC_ENV)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's; elsewhere the setting is a no-op by design")
    assert runtime.keep_freed_memory.__wrapped__() is True


def test_precision_auto_is_fp32_on_a_cpu_without_native_bf16() -> None:
    from air_restore.core.runtime import cpu_flags, resolve_precision

    native = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    assert resolve_precision("auto", torch.device("cpu")) == (torch.bfloat16 if native else torch.float32)
    assert resolve_precision("fp16", torch.device("cpu")) == torch.float16
    with pytest.raises(InvalidValueError, match="unknown precision 'fp8'.*auto, fp32, bf16, fp16"):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_restore_in_half_precision_stays_close_to_fp32(shipped, noisy_pair, precision) -> None:
    """The autocast paths (--precision bf16/fp16; auto on hardware that has them) against fp32 on a noisy
    photo: the speed issue asks ≥ 45 dB of every fast path."""
    from air_restore.core.metrics import psnr

    ref = restore(shipped, noisy_pair[1], gate=True, precision="fp32").image
    out = restore(shipped, noisy_pair[1], gate=True, precision=precision).image
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert psnr(out, ref).item() >= 45

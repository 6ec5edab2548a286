"""The tone guard (core.tone): where low light led, the output's large-scale brightness is refitted to the input's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from skimage import data

from air_restore.core.metrics import psnr, quantize8
from air_restore.core.tone import TONE, ToneGuard, low_luma


def _dark_photo() -> torch.Tensor:
    """A dark photo [3, 256, 256] with a flat, dusky patch of sky (top left 128²)."""
    x = torch.from_numpy(np.ascontiguousarray(data.astronaut()[:256, :256])).permute(2, 0, 1).float() / 255 * 0.2
    x[:, :128, :128] = torch.tensor([0.02, 0.03, 0.06]).view(3, 1, 1)
    return x


def test_the_guard_takes_a_blotch_off_a_flat_area_and_leaves_an_even_brightening_alone() -> None:
    """A restoration that brightens evenly (×4) is already what the guard fits: it comes back within a level. The
    same with a blotch some 50 px wide painted on the flat sky (what the network does there): most of it goes (what
    is finer than the guard's 4 px squares stays the network's), the detail elsewhere stays, and the change is the
    same in R, G and B (the colour is the network's)."""
    x = _dark_photo()
    even = (4 * x).clamp(0, 1)
    assert float((TONE(x, even.clone()) - even).abs().max()) < 1.5 / 255
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    blotch = 0.12 * torch.exp(-((yy - 60) ** 2 + (xx - 60) ** 2) / (2 * 10.0 ** 2))
    blotched = (even + blotch).clamp(0, 1)
    out = TONE(x, blotched.clone())
    sky = (slice(None), slice(0, 128), slice(0, 128))
    assert psnr(out[sky], even[sky]).item() > psnr(blotched[sky], even[sky]).item() + 6
    change, inside = out - blotched, ((out > 0) & (out < 1)).all(0)  # where nothing was clipped to [0, 1]
    assert inside.float().mean() > 0.9
    assert torch.allclose(change[0][inside], change[1][inside], atol=1e-5)
    assert torch.allclose(change[1][inside], change[2][inside], atol=1e-5)
    assert float((out - even)[:, 160:, 160:].abs().max()) < 1.5 / 255  # far from the blotch: untouched


def test_the_guard_follows_light_that_changes_across_the_photo() -> None:
    """A lamp to the left: the same dark value brightened ×6 on the left and ×2 on the right. Window by window the
    guard fits each side's own map; one curve for the whole photo could not."""
    x = _dark_photo()
    gain = torch.linspace(6.0, 2.0, 256).view(1, 1, 256)
    y = (gain * x).clamp(0, 1)
    out = TONE(x, y.clone())
    assert psnr(out, y).item() > 40


def test_the_guard_applies_where_low_light_leads_and_haze_does_not() -> None:
    order = ["noise", "haze", "lowlight"]
    assert TONE.applies(torch.tensor([0.0, 0.0, 0.3]), order)
    assert not TONE.applies(torch.tensor([0.9, 0.0, 0.29]), order)
    assert not TONE.applies(torch.tensor([0.0, 0.3, 0.6]), order)  # haze is not affine across a depth edge
    assert not TONE.applies(torch.tensor([0.0, 0.0]), ["noise", "haze"])
    assert low_luma(_dark_photo(), 4).shape == (1, 1, 64, 64)
    assert ToneGuard().radius == TONE.radius  # the pipeline's is the documented default


def test_air_restore_refits_a_dark_photo_and_only_where_the_estimator_routed_it() -> None:
    """Through the pipeline: a dark photo (the low-light plugin) comes out nearer the clean one with the guard;
    given weights are used as given, and a clean photo is not touched by it."""
    from air_restore.registry import load_pipeline
    from air_restore.registry.discovery import get_degradation
    from air_restore.registry.pipeline import Pipeline

    pipe = load_pipeline(device="cpu")
    off = Pipeline(dataclasses.replace(pipe.restorer, tone=None))
    clean = torch.from_numpy(np.ascontiguousarray(data.coffee()[:256, :256])).permute(2, 0, 1).float() / 255
    dark = quantize8(get_degradation("lowlight").synthesize(clean[None], torch.Generator().manual_seed(0), 0.5)[0])
    a, b = pipe.run(dark), off.run(dark)
    assert a.toned and not b.toned and a.weights == b.weights
    assert psnr(a.image, clean).item() > psnr(b.image, clean).item() + 0.3
    given = {"lowlight": 1.0}
    assert not pipe.run(dark, adapters=given).toned
    assert torch.equal(pipe.run(dark, adapters=given).image, off.run(dark, adapters=given).image)
    assert not pipe.run(clean).toned


@pytest.mark.parametrize("size", [(97, 131), (8, 8)])
def test_the_guard_keeps_odd_and_tiny_sizes(size) -> None:
    x = torch.rand((3, *size), generator=torch.Generator().manual_seed(0)) * 0.2
    out = TONE(x, (3 * x).clamp(0, 1))
    assert out.shape == x.shape and bool(torch.isfinite(out).all())

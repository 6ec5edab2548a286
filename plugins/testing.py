"""The plugin contract as a pytest suite, for plugin authors to run in their own CI.

    # test_my_plugin.py
    from .testing import DegradationContract
    import my_plugin

    class TestMyPlugin(DegradationContract):
        plugin = my_plugin.plugin
        adapter_dir = None        # or a folder with the plugin's trained adapter (PEFT layout + manifest)

pytest collects the inherited tests: the manifest is valid; the synthesizer keeps shape, dtype and the
[0, 1] range, takes a float or one severity per image, refuses a severity outside [0, 1], draws all its
randomness from the generator it is given (same seed, same output; the global RNG untouched), and
degrades more at higher severity. With ``adapter_dir``: the adapter fits the bundled base, weight 0
gives exactly the base's output, and the merged and unmerged blends agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .api import DegradationPlugin, PluginManifest


def _photos() -> torch.Tensor:
    """Two real photos [2, 3, 64, 64] from scikit-image, or smooth random scenes without it."""
    try:
        from skimage import data

        imgs = [data.astronaut(), data.coffee()]
        x = torch.from_numpy(np.stack([np.ascontiguousarray(a[:400, :400]) for a in imgs])).permute(0, 3, 1, 2)
        return F.interpolate(x.float() / 255, size=(64, 64), mode="area")
    except ImportError:
        g = torch.Generator().manual_seed(0)
        coarse = torch.rand((2, 3, 8, 8), generator=g)
        return F.interpolate(coarse, size=(64, 64), mode="bicubic", align_corners=False).clamp(0, 1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class DegradationContract:
    """Subclass with ``plugin = <your DegradationPlugin>`` (and optionally ``adapter_dir``)."""

    plugin: DegradationPlugin
    adapter_dir: str | Path | None = None

    @pytest.fixture(scope="class")
    def photos(self) -> torch.Tensor:
        return _photos()

    def test_manifest_is_valid(self) -> None:
        assert isinstance(self.plugin, DegradationPlugin), "plugin must be an air_restore.plugins.api.DegradationPlugin"
        PluginManifest.model_validate(self.plugin.manifest.model_dump())
        assert self.plugin.manifest.kind == "degradation"

    def _synth(self):
        if self.plugin.synthesize is None:
            pytest.skip(f"{self.plugin.name} has no synthesizer (it ships an adapter trained on real pairs)")
        return self.plugin.synthesize

    def test_synthesizer_keeps_shape_dtype_and_range(self, photos: torch.Tensor) -> None:
        synth = self._synth()
        for severity in (0.0, 0.5, 1.0):
            y = synth(photos, _gen(0), severity)
            assert y.shape == photos.shape and y.dtype == photos.dtype, f"severity {severity}: {tuple(y.shape)}"
            assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1, f"severity {severity}: out of [0, 1]"

    def test_synthesizer_takes_one_severity_per_image(self, photos: torch.Tensor) -> None:
        y = self._synth()(photos, _gen(0), torch.tensor([0.2, 0.9]))
        assert y.shape == photos.shape

    @pytest.mark.parametrize("severity", [-0.1, 1.5, float("nan")])
    def test_synthesizer_refuses_a_severity_outside_0_1(self, photos: torch.Tensor, severity: float) -> None:
        with pytest.raises(ValueError):
            self._synth()(photos, _gen(0), severity)

    def test_synthesizer_draws_randomness_from_its_generator_only(self, photos: torch.Tensor) -> None:
        synth = self._synth()
        state = torch.random.get_rng_state()
        a, b = synth(photos, _gen(7), 0.6), synth(photos, _gen(7), 0.6)
        assert torch.equal(torch.random.get_rng_state(), state), "the synthesizer used the global RNG"
        assert torch.equal(a, b), "the same generator seed gave different outputs"

    def test_higher_severity_degrades_more(self, photos: torch.Tensor) -> None:
        synth = self._synth()
        mse = [float((synth(photos, _gen(1), s) - photos).square().mean()) for s in (0.1, 1.0)]
        assert mse[0] < mse[1], f"MSE to the clean photos at severity 0.1 and 1.0: {mse}"

    # ------------------------------------------------------------------------------- with an adapter

    def _restorer(self):
        if self.adapter_dir is None:
            pytest.skip("no adapter_dir given")
        from ..registry.restorer import load_restorer

        r = load_restorer(use_adapters=False)
        r.attach_folder(self.adapter_dir)
        return r

    def test_adapter_weight_zero_is_the_base(self, photos: torch.Tensor) -> None:
        from ..core.restore import restore
        from ..registry.store import load_base

        r = self._restorer()
        base, _ = load_base()
        with torch.no_grad():
            ours = r.restore(photos[0], torch.zeros(len(r.adapters))).image
            plain = restore(base, photos[0], gate=r.gate).image  # the pipeline's clean-pixel gate on both
        assert torch.allclose(ours, plain, atol=1e-6), float((ours - plain).abs().max())

    def test_merged_and_unmerged_blends_agree(self, photos: torch.Tensor) -> None:
        r = self._restorer()
        w = torch.ones(len(r.adapters))
        out = {}
        for mode in ("merged", "unmerged"):
            r.mode = mode
            with torch.no_grad():
                # fp32: `auto` is bf16 on a CPU with native bf16, where the two orders round differently.
                out[mode] = r.restore(photos[0], w, precision="fp32").image
        assert torch.allclose(out["merged"], out["unmerged"], atol=1e-4), \
            float((out["merged"] - out["unmerged"]).abs().max())

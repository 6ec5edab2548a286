"""Per-image LoRA blending against real peft adapters saved in PEFT's layout."""

from __future__ import annotations

import copy

import pytest
import torch

from air_restore.core.arch import AirUNet, AirUNetConfig
from air_restore.core.lora import BlendedConv2d, adapter_names, attach, blend
from air_restore.registry.adapters import AdapterFileError, read_peft_adapter

peft = pytest.importorskip("peft")
CFG = AirUNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1)


def _base(seed=0) -> AirUNet:
    torch.manual_seed(seed)
    m = AirUNet(config=CFG)
    with torch.no_grad():  # non-zero residual branches so every layer matters
        for name, p in m.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.uniform_(0.5, 1.0)
    return m.eval()


def _peft_adapter(base: AirUNet, folder, seed: int, *, r=4, alpha=8, targets=("conv1", "conv3", "conv4", "conv5")):
    """A real PEFT LoRA adapter (random non-zero B) saved with save_pretrained; returns the PeftModel."""
    torch.manual_seed(seed)
    pm = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets)))
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    pm.save_pretrained(str(folder))
    return pm.eval()


@pytest.fixture()
def setup(tmp_path):
    base = _base()
    peft_models = [_peft_adapter(base, tmp_path / f"a{k}", seed=k + 1, r=2 + 2 * k, alpha=4 + k) for k in range(3)]
    blended = copy.deepcopy(base)
    for k in range(3):
        _, factors = read_peft_adapter(tmp_path / f"a{k}")
        attach(blended, f"a{k}", factors)
    x = torch.rand(4, 3, 24, 40)
    return base, peft_models, blended, x


def test_weight_zero_is_exactly_the_base(setup):
    base, _, blended, x = setup
    with torch.no_grad():
        ref = base(x).image
        assert torch.equal(blended(x).image, ref)  # outside blend()
        with blend(blended, torch.zeros(4, 3)):
            assert torch.equal(blended(x).image, ref)


@pytest.mark.parametrize("mode", ["unmerged", "merged"])
def test_one_hot_equals_the_peft_adapter(setup, mode):
    _, peft_models, blended, x = setup
    for k, pm in enumerate(peft_models):
        w = torch.zeros(4, 3)
        w[:, k] = 1
        with torch.no_grad(), blend(blended, w, mode=mode):
            ours = blended(x).image
        ref = pm(x).image
        assert torch.allclose(ours, ref, atol=1e-5), (k, (ours - ref).abs().max())


def test_merged_and_unmerged_agree_with_per_image_weights(setup):
    _, _, blended, x = setup
    w = torch.tensor([[0.2, 0.0, 0.9], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])
    with torch.no_grad():
        with blend(blended, w, mode="unmerged"):
            a = blended(x)
        with blend(blended, w, mode="merged"):
            b = blended(x)
    assert torch.allclose(a.image, b.image, atol=1e-5)
    assert torch.allclose(a.seg_logits, b.seg_logits, atol=1e-5)


def test_each_image_gets_its_own_weights(setup):
    """One batch with different weights per image equals running each image alone."""
    _, _, blended, x = setup
    w = torch.rand(4, 3)
    with torch.no_grad():
        with blend(blended, w):
            batch = blended(x).image
        for i in range(4):
            with blend(blended, w[i : i + 1]):
                single = blended(x[i : i + 1]).image
            assert torch.allclose(batch[i], single[0], atol=1e-5)


def test_blend_is_scoped_and_validated(setup):
    base, _, blended, x = setup
    with pytest.raises(RuntimeError):
        with blend(blended, torch.ones(4, 3)):
            raise RuntimeError("boom")
    assert all(m.weights is None for m in blended.modules() if isinstance(m, BlendedConv2d))
    with torch.no_grad():
        assert torch.equal(blended(x).image, base(x).image)
    with pytest.raises(ValueError, match=r"\[batch, 3\]"):
        with blend(blended, torch.ones(4, 2)):
            pass
    assert adapter_names(blended) == ["a0", "a1", "a2"]
    with pytest.raises(ValueError, match="already loaded"):
        attach(blended, "a0", {})


def test_adapters_with_different_targets(tmp_path):
    base = _base()
    pm1 = _peft_adapter(base, tmp_path / "x", seed=5, targets=("conv1",))
    pm2 = _peft_adapter(base, tmp_path / "y", seed=6, targets=("conv4", "conv5"))
    blended = copy.deepcopy(base)
    attach(blended, "x", read_peft_adapter(tmp_path / "x")[1])
    attach(blended, "y", read_peft_adapter(tmp_path / "y")[1])
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        for k, pm in enumerate((pm1, pm2)):
            w = torch.zeros(2, 2)
            w[:, k] = 1
            with blend(blended, w, mode="merged"):
                assert torch.allclose(blended(x).image, pm(x).image, atol=1e-5)


def test_bad_adapter_folders(tmp_path):
    with pytest.raises(AdapterFileError, match="adapter_config.json"):
        read_peft_adapter(tmp_path)
    base = _base()
    _peft_adapter(base, tmp_path / "a", seed=1)
    (tmp_path / "a" / "adapter_model.safetensors").rename(tmp_path / "a" / "adapter_model.bin")
    with pytest.raises(AdapterFileError, match="safetensors only"):
        read_peft_adapter(tmp_path / "a")
    (tmp_path / "a" / "adapter_model.bin").unlink()
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(AdapterFileError, match="unreadable"):
        read_peft_adapter(tmp_path / "a")


def test_peft_folder_loads_in_plain_peft(tmp_path):
    """The layout we read is the one plain peft writes and reads back."""
    base = _base()
    pm = _peft_adapter(base, tmp_path / "a", seed=3)
    again = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "a")).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(again(x).image, pm(x).image, atol=1e-6)


def test_later_adapter_wrapping_several_new_layers(tmp_path):
    """An adapter that wraps several not-yet-blended layers gives each of them every earlier adapter too,
    whatever the module order (here the first adapter targets a layer late in the network)."""
    base = _base()
    late = [p for p, m in base.named_modules() if p.startswith("decoders") and p.endswith("conv5")][-1]
    _peft_adapter(base, tmp_path / "x", seed=5, targets=(late,))
    pm2 = _peft_adapter(base, tmp_path / "y", seed=6, targets=("conv1", "conv3"))
    blended = copy.deepcopy(base)
    attach(blended, "x", read_peft_adapter(tmp_path / "x")[1])
    attach(blended, "y", read_peft_adapter(tmp_path / "y")[1])
    assert all(m.names == ["x", "y"] for m in blended.modules() if isinstance(m, BlendedConv2d))
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad(), blend(blended, torch.tensor([[0.0, 1.0], [0.0, 1.0]])):
        assert torch.allclose(blended(x).image, pm2(x).image, atol=1e-5)


def test_one_image_is_merged_once_for_every_tile(setup, monkeypatch):
    """DESIGN: for one image the adapters are merged into W0 once; every tile inside the blend block reuses
    that weight (no per-tile merge, no host sync), with the same result as the per-image paths."""
    _, _, blended, x = setup
    w = torch.tensor([[0.7, 0.0, 0.4]])
    layers = [m for m in blended.modules() if isinstance(m, BlendedConv2d)]
    calls = []
    original = BlendedConv2d.merge
    monkeypatch.setattr(BlendedConv2d, "merge", lambda self, v: calls.append(self) or original(self, v))
    tiles = [x[:1, :, :, :24], x[:1, :, :, 16:], x[1:2]]
    with torch.no_grad():
        with blend(blended, w, mode="merged"):
            assert all(m.merged_weight is not None for m in layers)
            once = [blended(t).image for t in tiles]
        assert len(calls) == len(layers)  # once per layer for the whole image, not per tile
        assert all(m.merged_weight is None for m in layers)  # cleared when the block ends
        for t, got in zip(tiles, once):
            with blend(blended, w, mode="unmerged"):
                ref = blended(t).image
            with blend(blended, w.expand(2, -1), mode="merged"):  # the batched grouped-conv path
                grouped = blended(t.expand(2, -1, -1, -1)).image[:1]
            assert (got - ref).abs().max() < 1e-5 and (got - grouped).abs().max() < 1e-5

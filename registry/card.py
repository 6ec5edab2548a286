"""The model card of an adapter on the Hub (README.md with Hub metadata) and its before/after samples.

``air push`` writes them; they are plain functions of a manifest, an index of files and a few images, so
that a card can be checked without any network.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

LIBRARY = "air-restore"
TAGS = ("image-restoration", "lora", "air-restore")
SAMPLE_FILES = {"input": "samples/input.png", "base": "samples/base.png", "adapter": "samples/adapter.png"}
SAMPLE_SIZE = 256
SAMPLE_SEVERITY = 0.5


def sample_photo(size: int = SAMPLE_SIZE) -> torch.Tensor | None:
    """scikit-image's astronaut (bundled with it, offline) at size × size, [3, H, W] in [0, 1]; None without it."""
    import torch

    try:
        from skimage import data
    except ImportError:
        return None
    return square_crop(torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255, size)


def square_crop(rgb: torch.Tensor, size: int = SAMPLE_SIZE) -> torch.Tensor:
    """Centre square of ``rgb`` [3, H, W], resized to size × size (antialiased)."""
    import torch

    _, h, w = rgb.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = rgb[:, y0:y0 + s, x0:x0 + s][None]
    return torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", antialias=True)[0].clamp(0, 1)


def synthesizer_for(manifest: dict) -> tuple[str, Callable] | None:
    """The plugin synthesizer that makes this adapter's degradation: the one it was trained with, else the
    plugin of the same name; None if there is none."""
    from .discovery import PluginLoadError, get_degradation

    data = (manifest.get("training") or {}).get("data") or {}
    for name in dict.fromkeys([data.get("plugin"), manifest.get("name")]):
        if not name:
            continue
        try:
            synth = get_degradation(name).synthesize
        except (KeyError, PluginLoadError):
            continue
        if synth is not None:
            return name, synth
    return None


def before_after(model, name: str, clean: torch.Tensor, synth: Callable | None, *, seed: int = 0,
                 severity: float = SAMPLE_SEVERITY) -> dict[str, torch.Tensor]:
    """{"input", "base", "adapter"} images [3, H, W]: ``clean`` degraded by ``synth`` (or as is), restored by
    the base alone (weight 0) and by the base with adapter ``name`` at weight 1. ``model`` must have the
    adapter attached (``core.lora.attach``)."""
    import torch

    from ..core.lora import adapter_names, blend
    from ..core.restore import restore

    with torch.no_grad():
        if synth is None:
            degraded = clean
        else:
            degraded = synth(clean[None], torch.Generator().manual_seed(seed), severity)[0].clamp(0, 1)
        names = adapter_names(model)
        one = torch.tensor([[1.0 if n == name else 0.0 for n in names]])
        with blend(model, torch.zeros_like(one)):
            base = restore(model, degraded).image
        with blend(model, one):
            adapted = restore(model, degraded).image
    return {"input": degraded, "base": base, "adapter": adapted}


def png_bytes(rgb: torch.Tensor) -> bytes:
    from PIL import Image

    arr = (rgb.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def metrics_table(metrics: dict[str, Any]) -> str:
    """Markdown table of the manifest's metrics (held-out PSNR before/after, else every scalar)."""
    keys = ("heldout_psnr_input", "heldout_psnr_base", "heldout_psnr_adapter")
    if all(isinstance(metrics.get(k), (int, float)) for k in keys):
        inp, base, ad = (float(metrics[k]) for k in keys)
        n = metrics.get("heldout_images", "?")
        return ("| held-out images | input | base | base + adapter | gain over base |\n"
                "|---:|---:|---:|---:|---:|\n"
                f"| {n} | {inp:.2f} dB | {base:.2f} dB | {ad:.2f} dB | {ad - base:+.2f} dB |")
    rows = [(k, v) for k, v in sorted(metrics.items()) if isinstance(v, (int, float, str))]
    if not rows:
        return "_No metrics recorded in the manifest._"
    return "| metric | value |\n|---|---:|\n" + "\n".join(f"| {k} | {_fmt(v)} |" for k, v in rows)


def model_card(manifest: dict, index: dict, *, repo_id: str, samples_note: str | None, branch: str = "main") -> str:
    """README.md for the repo: Hub metadata (library, tags, base fingerprint) and a short card."""
    from huggingface_hub import ModelCard, ModelCardData

    from .hub import INDEX_FILE

    name, fp = manifest["name"], manifest["base_fingerprint"]
    data = ModelCardData(
        library_name=LIBRARY, tags=list(TAGS), pipeline_tag="image-to-image",
        air_restore={"adapter": name, "base_fingerprint": fp, "rank": manifest.get("rank"),
                     "format_version": manifest.get("format_version")},
    )
    training = manifest.get("training") or {}
    tdata = training.get("data") or {}
    source = ", ".join(f"{k}: {v}" for k, v in tdata.items()) or "not recorded"
    spec = repo_id if branch == "main" else f"{repo_id}@{branch}"
    lines = [
        f"# {name}: an air-restore LoRA adapter", "",
        f"A LoRA adapter (rank {manifest.get('rank', '?')}) for air-restore, the all-in-one blind image restorer: "
        f"it teaches the base restorer one more degradation, **{name}**.", "",
        "## Use", "",
        "```bash",
        f"air pull {spec}    # or {repo_id}@<commit sha> to pin one version",
        f"air restore photo.jpg --adapters {name}=1",
        "air train estimator --install    # blend it automatically, per image",
        "```", "",
        "It is a plain PEFT LoRA folder, so `peft.PeftModel.from_pretrained(base, folder)` loads it on the "
        "air-restore base model (`air_restore.registry.store.load_base()`).", "",
        "## Base model", "",
        f"Trained for the base with fingerprint `{fp}`. `air pull` refuses it on any other base.", "",
        "## Metrics", "",
        "Held-out PSNR recorded in the manifest when the adapter was trained:", "",
        metrics_table(manifest.get("metrics") or {}), "",
    ]
    if samples_note is not None:
        lines += [
            "## Before / after", "",
            f"| input | base alone | base + {name} |", "|:---:|:---:|:---:|",
            "| " + " | ".join(f"![{k}]({p})" for k, p in SAMPLE_FILES.items()) + " |", "",
            samples_note, "",
        ]
    lines += [
        "## Training", "",
        f"Data: {source}. Steps: {training.get('steps', '?')}, batch {training.get('batch_size', '?')}, "
        f"crop {training.get('crop', '?')}, learning rate {training.get('lr', '?')}, seed {training.get('seed', '?')}.", "",
        "## Files", "",
        f"`air pull` checks each file against `{INDEX_FILE}` (recorded at push time) before installing it.", "",
        "| file | sha256 | bytes |", "|---|---|---:|",
        *(f"| {p} | `{e['sha256']}` | {e['size']} |" for p, e in index["files"].items()), "",
    ]
    card = ModelCard("---\n" + data.to_yaml() + "\n---\n\n" + "\n".join(lines))
    return str(card)


def card_samples(name: str, folder: Path, fingerprint: str, *, sample: Path | None = None,
                 weights: Path | None = None) -> tuple[dict[str, "torch.Tensor"] | None, str | None]:
    """(images, note) for the card of adapter ``name`` (its ``folder``): a centre crop of ``sample`` (default
    scikit-image's astronaut; (None, None) without it) degraded by the adapter's plugin and restored by
    the base alone and with the adapter."""
    from ..core.io.images import read_image
    from ..core.lora import attach
    from .adapters import load_for_base
    from .store import load_base

    if sample is not None:
        clean, photo = square_crop(read_image(sample).rgb), sample.name
    else:
        clean, photo = sample_photo(), "scikit-image's astronaut"
    if clean is None:
        return None, None
    model, _ = load_base(weights)
    manifest, factors = load_for_base(folder, fingerprint)
    attach(model, manifest["name"], factors)
    found = synthesizer_for(manifest)
    samples = before_after(model, manifest["name"], clean, found[1] if found else None)
    side = clean.shape[-1]
    how = (f"degraded by the `{found[0]}` plugin at severity {SAMPLE_SEVERITY} (seed 0)" if found
           else "as is (no plugin synthesizes this degradation)")
    note = (f"{side}×{side} centre crop of {photo}, {how}; restored by the base alone and by the base "
            f"with `{name}` at weight 1. Made by `air push`.")
    return samples, note

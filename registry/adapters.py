"""Adapters on disk in PEFT's layout (``adapter_config.json`` + ``adapter_model.safetensors``), so plain
``peft.PeftModel.from_pretrained`` loads them unchanged; read here into :class:`LoRAFactors` for
per-image blending (``air_restore.core.lora``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from ..core.lora import LoRAFactors
from ..core.io.weights import first_non_finite
from ..core.errors import UserError

PREFIX = "base_model.model."


class AdapterFileError(UserError):
    """An adapter folder is missing, unreadable or not a LoRA adapter we can blend. One-line message."""


def read_peft_adapter(folder: str | Path) -> tuple[dict, dict[str, LoRAFactors]]:
    """(adapter_config, {module path: factors}) from a PEFT LoRA folder; safetensors only, never pickle."""
    folder = Path(folder)
    cfg_path, weights_path = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not cfg_path.is_file():
        raise AdapterFileError(f"{folder}: no adapter_config.json (not a PEFT adapter folder)")
    if not weights_path.is_file():
        if (folder / "adapter_model.bin").exists():
            raise AdapterFileError(f"{folder}: only a pickle adapter_model.bin; air-restore loads safetensors only")
        raise AdapterFileError(f"{folder}: no adapter_model.safetensors")
    try:
        cfg = json.loads(cfg_path.read_text())
        tensors = load_file(str(weights_path))
    except (ValueError, SafetensorError, OSError) as e:
        raise AdapterFileError(f"{folder}: unreadable adapter files ({type(e).__name__}: {e})") from None
    damaged = first_non_finite(tensors)
    if damaged is not None:
        raise AdapterFileError(f"{weights_path}: {damaged} holds NaN or Inf values, so the file is damaged; "
                               "remove the adapter and install or pull it again")
    if cfg.get("peft_type", "LORA") != "LORA":
        raise AdapterFileError(f"{folder}: peft_type {cfg.get('peft_type')!r} is not LORA")
    factors: dict[str, LoRAFactors] = {}
    paths = sorted({k[len(PREFIX):].rsplit(".lora_", 1)[0] for k in tensors if ".lora_" in k and k.startswith(PREFIX)})
    if not paths:
        raise AdapterFileError(f"{weights_path}: no LoRA tensors (keys like {PREFIX}<module>.lora_A.weight)")
    for path in paths:
        try:
            a = tensors[f"{PREFIX}{path}.lora_A.weight"]
            b = tensors[f"{PREFIX}{path}.lora_B.weight"]
        except KeyError as e:
            raise AdapterFileError(f"{weights_path}: {path} lacks {e.args[0]}") from None
        if a.ndim == 4 and a.shape[2:] != (1, 1):
            raise AdapterFileError(f"{weights_path}: {path} is not a 1×1 conv adapter (A {tuple(a.shape)})")
        r = a.shape[0]
        alpha = cfg.get("alpha_pattern", {}).get(path, cfg.get("lora_alpha", r))
        r_cfg = cfg.get("rank_pattern", {}).get(path, cfg.get("r", r))
        scale = alpha / math.sqrt(r_cfg) if cfg.get("use_rslora") else alpha / r_cfg
        factors[path] = LoRAFactors(a.reshape(r, -1).float(), b.reshape(b.shape[0], r).float(), scale)
    return cfg, factors


def read_manifest(folder: str | Path) -> dict:
    """Our manifest from the adapter's safetensors metadata (``air_manifest``); {} if it has none."""
    from safetensors import safe_open

    weights = Path(folder) / "adapter_model.safetensors"
    try:
        with safe_open(str(weights), framework="pt") as f:
            raw = (f.metadata() or {}).get("air_manifest")
    except (SafetensorError, OSError) as e:
        raise AdapterFileError(f"{weights}: unreadable ({e})") from None
    if raw is None:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise AdapterFileError(f"{weights}: malformed air_manifest metadata") from None


def load_for_base(folder: str | Path, base_fingerprint: str) -> tuple[dict, dict[str, LoRAFactors]]:
    """(manifest, factors) of an adapter folder trained on the base with ``base_fingerprint``; refuses
    an adapter made for another base, naming the one it needs."""
    manifest = read_manifest(folder)
    if not manifest:
        raise AdapterFileError(f"{folder}: no air-restore manifest (train it with `air train adapter`)")
    need = manifest.get("base_fingerprint")
    if need != base_fingerprint:
        raise AdapterFileError(
            f"{folder}: adapter {manifest.get('name')!r} was trained for base {need}, but the base in use is "
            f"{base_fingerprint}; retrain it with `air train adapter` on this base"
        )
    _, factors = read_peft_adapter(folder)
    return manifest, factors

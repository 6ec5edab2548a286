"""Weights files: safetensors only, self-describing, written atomically.

A base weights file holds the fp16 state dict of :class:`AirUNet` and, in the safetensors header's
``__metadata__`` (all strings): ``format_version``, ``kind`` ("base"), ``config`` (JSON of
:class:`AirUNetConfig`), ``fingerprint`` (hash of the stored tensors), ``degradation`` (the classes),
``training`` (JSON summary of the training data and run) and ``metrics`` (JSON). An estimator file has
``kind`` "estimator" and its ordered adapter names. Adapter folders (PEFT layout) are read by
:mod:`air_restore.registry.adapters`. Nothing here ever unpickles: ``torch.load`` is not used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from ..arch import FORMAT_VERSION, AirUNet, AirUNetConfig, fingerprint
from ..estimator import Estimator, EstimatorConfig
from ..errors import UserError
from .files import atomic_write

__all__ = [
    "BaseModelInfo", "ModelFileError", "first_non_finite", "load_base", "load_estimator", "read_base_info",
    "read_estimator", "save_base", "save_estimator", "save_tensors",
]


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (:func:`~air_restore.core.io.files.atomic_write`), with the
    usual umask-derived permissions."""
    data = save(tensors, metadata=metadata)
    atomic_write(Path(path), lambda f: f.write(data))


class ModelFileError(UserError):
    """A weights file is missing, unreadable, or not an air-restore base model. One-line message."""


@dataclass
class BaseModelInfo:
    path: Path
    config: AirUNetConfig
    fingerprint: str
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def save_base(
    model: AirUNet,
    path: str | Path,
    *,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float16,
) -> str:
    """Write ``model`` as a base weights file (fp16 by default); returns its fingerprint."""
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    fp = fingerprint(tensors)
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "kind": "base",
        "config": model.config.model_dump_json(),
        "fingerprint": fp,
        "degradation": ",".join(model.config.classes[1:]),
        "training": json.dumps(training or {}),
        "metrics": json.dumps(metrics or {}),
    }
    save_tensors(tensors, Path(path), metadata)
    return fp


def read_base_info(path: str | Path) -> BaseModelInfo:
    """Read and check a base file's metadata without loading the tensors."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelFileError(f"{path}: not a readable safetensors file ({e})") from None
    if meta.get("kind") != "base":
        raise ModelFileError(f"{path}: not an air-restore base model (metadata kind={meta.get('kind')!r})")
    try:
        version = int(meta.get("format_version", "0"))
        training = json.loads(meta.get("training", "{}"))
        metrics = json.loads(meta.get("metrics", "{}"))
    except ValueError as e:  # json.JSONDecodeError is a ValueError
        raise ModelFileError(f"{path}: malformed metadata ({type(e).__name__}: {e})") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: format version {version} is newer than this air-restore understands ({FORMAT_VERSION}); "
            "upgrade air-restore"
        )
    try:
        config = AirUNetConfig.model_validate_json(meta["config"])
    except Exception as e:  # pydantic.ValidationError or KeyError
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{path}: invalid model config in metadata ({first})") from None
    return BaseModelInfo(
        path=path,
        config=config,
        fingerprint=meta.get("fingerprint", ""),
        training=training,
        metrics=metrics,
    )


def load_base(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[AirUNet, BaseModelInfo]:
    """Load a base model in fp32, in eval mode, with its info (the bundled one: ``registry.store.load_base``).

    The fingerprint in the metadata is checked against the tensors, so a damaged or edited file is
    refused rather than silently used.
    """
    info = read_base_info(path)
    tensors = load_file(str(info.path))
    actual = fingerprint(tensors)
    if info.fingerprint and actual != info.fingerprint:
        raise ModelFileError(
            f"{info.path}: weights do not match their recorded fingerprint ({actual} != {info.fingerprint}); "
            "the file is damaged or was edited"
        )
    model = AirUNet(config=info.config)
    try:
        model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise ModelFileError(f"{info.path}: weights do not fit the recorded config ({first})") from None
    info.fingerprint = actual
    return model.to(device).eval(), info


def save_estimator(estimator, path: str | Path, *, training: dict[str, Any] | None = None,
                   metrics: dict[str, Any] | None = None) -> None:
    """Write an estimator (fp32, small) with its ordered adapter names in the metadata."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in estimator.state_dict().items()}
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "kind": "estimator",
        "config": estimator.config.model_dump_json(),
        "adapters": json.dumps(list(estimator.config.adapters)),
        "training": json.dumps(training or {}),
        "metrics": json.dumps(metrics or {}),
    }
    save_tensors(tensors, Path(path), metadata)


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or Inf (a damaged file), or None."""
    return next((k for k, v in tensors.items() if v.is_floating_point() and not bool(v.isfinite().all())), None)


def read_estimator(path: str | Path):
    """Load an estimator file whatever adapter set it was trained for (its names: ``est.config.adapters``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such estimator file (run `air train estimator`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("kind") != "estimator":
            raise ModelFileError(f"{path}: not an air-restore estimator (metadata kind={meta.get('kind')!r})")
        config = EstimatorConfig.model_validate_json(meta["config"])
        tensors = load_file(str(path))
        if (bad := first_non_finite(tensors)) is not None:
            raise ModelFileError(f"{path}: {bad} holds NaN or Inf values, so the file is damaged; run "
                                 "`air train estimator --install` (or remove the file)")
        est = Estimator(config=config)
        est.load_state_dict(tensors)
    except ModelFileError:
        raise
    except Exception as e:  # unreadable file, missing or invalid metadata, tensors that do not fit
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelFileError(f"{path}: not a readable estimator file ({first})") from None
    return est.eval()


def load_estimator(path: str | Path, adapters: list[str] | tuple[str, ...]):
    """Load an estimator for exactly this ordered adapter set; a different set is refused with the fix."""
    est = read_estimator(path)
    if tuple(est.config.adapters) != tuple(adapters):
        raise ModelFileError(
            f"{path}: estimator was trained for adapters {list(est.config.adapters)}, but the installed ones are "
            f"{list(adapters)}; retrain it with `air train estimator`"
        )
    return est

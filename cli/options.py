"""Options several commands share: adapter weights as typed on the command line, tile sizes, and the
pipeline they open (``air restore``, ``air batch``)."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from .ui import warn

#: Adapter weights a user may set: 0 (off) to a little over 1 (full strength); beyond, outputs saturate.
MAX_ADAPTER_WEIGHT = 1.5


def _weight(text: str, option: str, spec: str, name: str) -> float:
    """One adapter weight from the command line: a finite number in [0, MAX_ADAPTER_WEIGHT]."""
    try:
        w = float(text) if text else 1.0
    except ValueError:
        raise UserError(f"{option} {spec!r}: the weight after '=' must be a number, e.g. {name}=0.5") from None
    if not 0 <= w <= MAX_ADAPTER_WEIGHT:  # also refuses nan and inf
        raise UserError(f"{option} {spec!r}: weight {text} is out of range; use 0 (off) to "
                        f"{MAX_ADAPTER_WEIGHT:g} (1 = full strength)")
    return w


def parse_weights(spec: str) -> dict[str, float]:
    """``noise=1,rain=0.5`` → {"noise": 1.0, "rain": 0.5}; a bare name means weight 1."""
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, w = part.partition("=")
        out[name.strip()] = _weight(w.strip(), "--adapters", spec, name.strip())
    return out


def parse_folder_spec(spec: str) -> tuple[str, float]:
    """``PATH`` or ``PATH=WEIGHT`` of ``--adapter``."""
    path, _, w = spec.partition("=")
    return path, _weight(w.strip(), "--adapter", spec, path)


def check_tiles(tile: int | None, overlap: int) -> None:
    """``tile`` None: the default for the precision, checked where it is chosen."""
    for name, v in (("--tile", tile), ("--overlap", overlap)):
        if v is not None and v % 8:
            raise UserError(f"{name} must be a multiple of 8, got {v}")
    if tile is not None and tile <= overlap:
        raise UserError(f"--tile ({tile}) must be larger than --overlap ({overlap})")


def open_pipeline(weights, device: str, no_adapters: bool, tta: bool, spec: str | None, folders: list[str],
                  gate: bool = True, precision: str = "auto"):
    """The pipeline `air restore` and `air batch` run, with --adapter folders attached, and the --adapters
    weights parsed and their names checked before any image is read; warnings printed. Returns
    (pipeline, weights given or None)."""
    from ..registry.pipeline import load_pipeline

    fixed = parse_weights(spec) if spec is not None else None
    pipe = load_pipeline(weights, device=device, use_adapters=not no_adapters, tta=tta, gate=gate,
                         precision=precision)
    for folder, w in map(parse_folder_spec, folders):
        pipe.attach(Path(folder), w)
    if fixed is not None:
        pipe.restorer.weights_from(fixed)  # unknown names are refused here
    for w in pipe.warnings:
        warn(w)
    return pipe, fixed

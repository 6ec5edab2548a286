"""The data of ``air add-degradation``: real pairs read from a folder, and the seeded split that holds
some out, whole scenes at a time."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch

from ..core.errors import InvalidValueError
from ..core.io.images import iter_image_paths, read_image


def load_pairs(folder: Path, *, max_pixels: int = 50_000_000) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, degraded, clean) for every pair of ``folder``; any unmatched file or size mismatch is an error."""
    deg_dir, clean_dir = folder / "degraded", folder / "clean"
    for d in (folder, deg_dir, clean_dir):
        if not d.is_dir():
            raise InvalidValueError(f"{folder}: expected a folder with sub-folders degraded/ and clean/ ({d} is missing)")
    deg = {p.name: p for p in iter_image_paths([deg_dir])}
    cln = {p.name: p for p in iter_image_paths([clean_dir])}
    if not deg or not cln:
        raise InvalidValueError(f"{folder}: {'degraded/' if not deg else 'clean/'} holds no images")
    for a, b, side in ((deg, cln, "clean"), (cln, deg, "degraded")):
        missing = sorted(set(a) - set(b))
        if missing:
            raise InvalidValueError(f"{folder}: {len(missing)} image(s) have no {side} partner of the same name, "
                             f"e.g. {missing[0]}")
    out = []
    for name in sorted(deg):
        d, c = read_image(deg[name], max_pixels=max_pixels).rgb, read_image(cln[name], max_pixels=max_pixels).rgb
        if d.shape != c.shape:
            raise InvalidValueError(f"{name}: degraded {d.shape[2]}×{d.shape[1]} and clean {c.shape[2]}×{c.shape[1]} "
                             "sizes differ")
        out.append((name, d, c))
    return out


_SHOT = re.compile(r"^(.+)_\d+$")


def scene(name: str) -> str:
    """The scene of a file name: its stem without a trailing ``_N`` (``chair_11.JPG`` and ``chair_5.JPG``: two
    shots or crops of one scene, as PolyU names them); a name without one is a scene of its own."""
    stem = Path(name).stem
    m = _SHOT.match(stem)
    return m.group(1) if m else stem


def split(names: Sequence[str], holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices of the files ``names``: a seeded random ``holdout`` share (at least one of
    each), whole scenes (:func:`scene`) on one side, rounded up to the last scene taken. Split by photo
    instead, PolyU held out 19 of 20 photos whose scene was trained on, and the estimator learnt to recognise
    PolyU's scenes (its clean photos got realnoise 0.91) unseen. When some scene holds more than half the
    share (a naming scheme such as ``img_001``, not shots of one scene), or there is one scene, photos are
    split one by one: with a scene per photo the split is the same."""
    n = len(names)
    if n < 2:
        raise InvalidValueError(f"need at least 2 images (one to train on, one held out), got {n}")
    k = min(n - 1, max(1, round(holdout * n)))
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(scene(name), []).append(i)
    units = list(groups.values())
    if len(units) < 2 or max(map(len, units)) > max(1, k // 2):
        units = [[i] for i in range(n)]
    held: list[int] = []
    for j in torch.randperm(len(units), generator=torch.Generator().manual_seed(seed)).tolist():
        if len(held) >= k:
            break
        if n - len(held) - len(units[j]) >= 1:  # one left to train on
            held += units[j]
    out = set(held)
    return [i for i in range(n) if i not in out], sorted(out)

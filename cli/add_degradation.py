"""``air add-degradation NAME``: teach the installed model a new degradation, end to end.

1. data: real pairs (``degraded/`` + ``clean/``, matched by file name) or clean photos degraded by a
   plugin's synthesizer; a seeded share is held out;
2. phase II: a LoRA adapter on the frozen base (``train_adapter``);
3. phase III: the estimator retrained over every active adapter plus the new one, warm-started from the
   current estimator (a few hundred steps instead of thousands);
4. before/after: held-out PSNR of the full pipeline (estimator-blended adapters) on the new task and on
   every old task, with the old set and with the new one;
5. install: the adapter and the estimator go into ``$AIR_HOME``, each by one rename, only after all of
   the above succeeded; an interrupted run leaves the store as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from air_restore.core.metrics import quantize8
from air_restore.core.io.images import iter_image_paths, read_image
from air_restore.cli.train_adapter import heldout_psnr
from air_restore.cli.train_estimator import Source, load_views
from air_restore.registry.discovery import discover
from air_restore.registry.local import adapters_dir, local_estimator_path, sweep_leftovers
from air_restore.registry.pipeline import Restorer


def load_pairs(folder: Path, *, max_pixels: int = 50_000_000) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, degraded, clean) for every pair of ``folder``; any unmatched file or size mismatch is an error."""
    deg_dir, clean_dir = folder / "degraded", folder / "clean"
    for d in (folder, deg_dir, clean_dir):
        if not d.is_dir():
            raise ValueError(f"{folder}: expected a folder with sub-folders degraded/ and clean/ ({d} is missing)")
    deg = {p.name: p for p in iter_image_paths([deg_dir])}
    cln = {p.name: p for p in iter_image_paths([clean_dir])}
    if not deg or not cln:
        raise ValueError(f"{folder}: {'degraded/' if not deg else 'clean/'} holds no images")
    for a, b, side in ((deg, cln, "clean"), (cln, deg, "degraded")):
        missing = sorted(set(a) - set(b))
        if missing:
            raise ValueError(f"{folder}: {len(missing)} image(s) have no {side} partner of the same name, "
                             f"e.g. {missing[0]}")
    out = []
    for name in sorted(deg):
        d, c = read_image(deg[name], max_pixels=max_pixels).rgb, read_image(cln[name], max_pixels=max_pixels).rgb
        if d.shape != c.shape:
            raise ValueError(f"{name}: degraded {d.shape[2]}×{d.shape[1]} and clean {c.shape[2]}×{c.shape[1]} "
                             "sizes differ")
        out.append((name, d, c))
    return out


def split(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: a seeded random ``holdout`` share (at least one of each)."""
    if n < 2:
        raise ValueError(f"need at least 2 images (one to train on, one held out), got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = min(n - 1, max(1, round(holdout * n)))
    return sorted(perm[k:]), sorted(perm[:k])


@dataclass
class Task:
    """A held-out evaluation task: (degraded, clean) image pairs for one adapter's degradation."""

    name: str
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    note: str = ""


def synthetic_task(name: str, synth: Callable, clean: list[torch.Tensor], *, severity: float = 0.5,
                   seed: int = 0, size: int = 256) -> Task:
    """Held-out clean photos (centre crops of ``size``) degraded by ``synth`` at a fixed seed and severity."""
    pairs = []
    for i, c in enumerate(clean):
        _, h, w = c.shape
        s = min(size, h, w) // 8 * 8
        y0, x0 = (h - s) // 2, (w - s) // 2
        c = c[:, y0 : y0 + s, x0 : x0 + s]
        g = torch.Generator().manual_seed(seed + i)
        pairs.append((quantize8(synth(c[None], g, severity)[0]), c))
    return Task(name, pairs, note=f"synthetic, severity {severity}, seeds {seed}…{seed + len(clean) - 1}")


def pipeline_psnr(restorer: Restorer, task: Task) -> float:
    """Mean PSNR of the full pipeline (estimator-chosen weights) on a task."""
    return heldout_psnr(lambda x: restorer.restore(x[0]).image[None], task.pairs)


def synthesizers() -> dict[str, Callable]:
    """Working degradation plugins that have a synthesizer, by name."""
    return {r.plugin.name: r.plugin.synthesize for r in discover()
            if r.plugin is not None and getattr(r.plugin, "synthesize", None) is not None}


def estimator_sources(adapters: list) -> tuple[dict[str, Source], list[str]]:
    """A :class:`Source` per installed adapter (its plugin's synthesizer, else its stored views); the names
    of adapters with neither are returned too."""
    synths = synthesizers()
    out, missing = {}, []
    for a in adapters:
        if a.name in synths:
            out[a.name] = Source(synth=synths[a.name])
        elif (v := load_views(a.path)) is not None:
            out[a.name] = Source(views=v)
        else:
            missing.append(a.name)
    return out, missing


class Staging:
    """A hidden folder in ``$AIR_HOME`` for the new adapter and estimator; ``commit`` renames both into
    place, anything else (an error, Ctrl-C) deletes it. Nothing half-made is ever visible to ``air list``."""

    def __init__(self, name: str) -> None:
        self.root = adapters_dir().parent / f".staging-{name}-{uuid.uuid4().hex[:8]}"
        self.adapter = self.root / name
        self.estimator = self.root / "estimator.safetensors"

    def __enter__(self) -> "Staging":
        sweep_leftovers()
        self.root.mkdir(parents=True)
        return self

    def commit(self, name: str, overwrite: bool) -> Path:
        dest = adapters_dir() / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        old = None
        if dest.exists():
            if not overwrite:
                raise FileExistsError(f"adapter {name!r} appeared in {dest.parent} meanwhile; nothing installed")
            old = dest.with_name(f".{name}.{uuid.uuid4().hex[:8]}.old")
            dest.rename(old)
        self.adapter.rename(dest)
        os.replace(self.estimator, local_estimator_path())
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return dest

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


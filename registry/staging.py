"""Where ``air add-degradation NAME`` keeps its work until it installs: the staging folder that becomes the new
adapter and estimator in one rename (:class:`Staging`), and the finished adapter of an interrupted run, reused by
the same command run again (:class:`Resume`)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from .store import adapters_dir, air_home, local_estimator_path, sweep_leftovers


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



class Resume:
    """The adapter of a run of ``air add-degradation NAME`` that got past phase II, kept in
    ``$AIR_HOME/.resume-NAME/`` (``adapter/`` and the ``recipe.json`` it was trained with) until that run
    installs. The same command run again (same recipe: data, options, base) reuses it instead of training
    again; any other recipe trains anew and replaces it."""

    def __init__(self, name: str, recipe: dict) -> None:
        self.root = _resume_root(name)
        self.recipe = recipe

    def take(self, dest: Path) -> dict | None:
        """Copy the kept adapter to ``dest`` and return its manifest if it was trained with this recipe; else
        None (and nothing copied)."""
        try:
            kept = json.loads((self.root / "recipe.json").read_text())
        except (OSError, ValueError):
            return None
        if kept != self.recipe or not (self.root / "adapter" / "air_manifest.json").is_file():
            return None
        shutil.copytree(self.root / "adapter", dest)
        return json.loads((dest / "air_manifest.json").read_text())

    def keep(self, adapter: Path) -> None:
        """Keep a copy of the finished ``adapter`` folder (and the recipe), replacing an older one whole."""
        tmp = self.root.with_name(f"{self.root.name}.{uuid.uuid4().hex[:8]}.tmp")  # swept if this dies
        shutil.copytree(adapter, tmp / "adapter")
        (tmp / "recipe.json").write_text(json.dumps(self.recipe, indent=1))
        self.clear()
        tmp.rename(self.root)

    def clear(self) -> None:
        if self.root.exists():
            old = self.root.with_name(f"{self.root.name}.{uuid.uuid4().hex[:8]}.old")
            self.root.rename(old)
            shutil.rmtree(old, ignore_errors=True)


def _resume_root(name: str) -> Path:
    return air_home() / f".resume-{name}"


def kept_adapter(name: str) -> Path | None:
    """The folder holding a finished adapter that an interrupted ``air add-degradation NAME`` kept, if any."""
    root = _resume_root(name)
    return root if (root / "recipe.json").is_file() else None


def _data_key(paths: list[Path]) -> str:
    """What identifies the training data: each file's name, size and modification time (not its bytes)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]

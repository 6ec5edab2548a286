"""The store: the bundled weights and the user's local store (``$AIR_HOME``) of adapters and estimator.

Layout of ``$AIR_HOME`` (default ``$XDG_DATA_HOME/air-restore``, i.e. ``~/.local/share/air-restore``)::

    adapters/NAME/                  one adapter in PEFT's layout + our manifest
        adapter_config.json
        adapter_model.safetensors   (manifest also in its metadata, key air_manifest)
        air_manifest.json
        air_source.json             where it came from: {"kind": "local" | "hub", ...}
    estimator.safetensors           the estimator for the current adapter set (air add-degradation,
                                    air train estimator --install)

The bundled adapters (noise, blur, haze, rain, lowlight) and their estimator ship inside the package
(``air_restore/registry/weights``). The *active set* is the bundled adapters in their fixed order
followed by the local ones sorted by name; only adapters made for the base in use are active.

Every change to the store is atomic: a new adapter is copied into a hidden temporary folder and renamed
into place, so an interrupted install leaves nothing half-installed and ``air list`` never shows it.
A process killed outright (SIGKILL, power loss) can leave such a hidden folder behind;
:func:`sweep_leftovers` removes those older than a day at the start of the next install, pull or
``air add-degradation``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch

from ..core.arch import AirUNet
from ..core.io import weights
from ..core.io.weights import BaseModelInfo
from .adapters import AdapterFileError, read_manifest, read_peft_adapter
from ..plugins.api import NAME_RE
from ..core.errors import InvalidValueError, UnknownNameError

#: The bundled adapters of the built-in degradation plugins (each has a synthesizer to train and judge it on). snow
#: is the one `air add-degradation snow --synthetic snow` made (rank 8, 1500 steps, the estimator distilled), bundled
#: since 2026-12-07: on snow written apart from the plugin the pipeline gave the input back (NOTES.md).
BUNDLED_PLUGINS = ("noise", "blur", "haze", "rain", "lowlight", "jpeg", "snow")


class RealAdapter(NamedTuple):
    """A bundled adapter learnt from real pairs by ``air add-degradation``. The project ships no pixels of those
    photos, not even the estimator's views of them, so when an estimator is trained again a synthesizer stands in
    for their examples."""

    stand_in: str  # the synthesizer of ``core.degradations`` that stands in for its examples
    head_class: str  # the segmentation head's class that sees its degradation: the clean-pixel gate stays on


#: realnoise: PolyU's camera photos (the gate kept for it). Its stand-in is no proxy: the estimator gives camera_noise,
#: or a noise model fitted to PolyU, realnoise ≈ 0. After `air add-degradation snow` held-out PolyU still comes back
#: at 37.19 dB (37.15 before; input 36.26), since the distillation keeps the rest of the routing (NOTES.md).
BUNDLED_REAL = {"realnoise": RealAdapter("camera_noise", "noise")}
#: The bundled adapters a floor weights rather than the estimator (``core.floors.Floor.moves_to``), each with the
#: synthesizer of ``core.degradations`` it was learnt on: lumanoise, the noise adapter retrained on noise without
#: colour (grey photos, luma noise), which the noise floor raises where it finds such noise.
BUNDLED_FLOORED = {"lumanoise": "mono_noise"}
#: Every bundled adapter, in order.
BUNDLED_ORDER = BUNDLED_PLUGINS + tuple(BUNDLED_REAL) + tuple(BUNDLED_FLOORED)
ESTIMATOR_FILE = "estimator.safetensors"
BUNDLED_BASE = "base-v1.safetensors"
SOURCE_FILE = "air_source.json"
WEIGHTS_FILE = "adapter_model.safetensors"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def air_home() -> Path:
    """The local store's root: ``$AIR_HOME``, else ``$XDG_DATA_HOME/air-restore``, else ~/.local/share/air-restore."""
    if os.environ.get("AIR_HOME"):
        return Path(os.environ["AIR_HOME"]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "air-restore"


# Hidden work folders and files of the store's writers: install_adapter (.NAME.xxxx.tmp / .old), air remove
# (.NAME.xxxx.removed), air pull
# (.pull-*), air add-degradation (.staging-*), atomic file saves (.FILE.xxxx.tmp).
LEFTOVER_PREFIXES = (".pull-", ".staging-")
LEFTOVER_SUFFIXES = (".tmp", ".old", ".removed")
LEFTOVER_AGE_S = 24 * 3600  # far longer than any live install, pull or add-degradation


def leftovers() -> list[Path]:
    """What killed writers may have left in the store: hidden work folders and files (any age)."""
    found = []
    for root in (air_home(), adapters_dir()):
        if root.is_dir():
            found += [p for p in root.iterdir() if p.name.startswith(LEFTOVER_PREFIXES)
                      or (p.name.startswith(".") and p.name.endswith(LEFTOVER_SUFFIXES))]
    return found


def sweep_leftovers(max_age_s: float = LEFTOVER_AGE_S) -> list[Path]:
    """Delete what killed writers left in the store: hidden work folders and files not touched for
    ``max_age_s`` (a younger one may belong to a command running now). Returns the removed paths."""
    removed, now = [], time.time()
    for p in leftovers():
        try:
            if now - p.lstat().st_mtime < max_age_s:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:
            continue  # another process got there first, or no permission: leave it
        removed.append(p)
    return removed


def adapters_dir() -> Path:
    return air_home() / "adapters"


def local_estimator_path() -> Path:
    return air_home() / ESTIMATOR_FILE


def bundled_dir() -> Path:
    return Path(str(resources.files("air_restore.registry") / "weights"))


def bundled_base_path() -> Path:
    """Path of the base weights shipped inside the package."""
    return bundled_dir() / BUNDLED_BASE


def load_base(path: str | Path | None = None, *, device: str | torch.device = "cpu") -> tuple[AirUNet, BaseModelInfo]:
    """:func:`air_restore.core.io.weights.load_base` of ``path``, the bundled base by default."""
    return weights.load_base(path or bundled_base_path(), device=device)


def bundled_estimator_path() -> Path:
    return bundled_dir() / ESTIMATOR_FILE


@dataclass
class InstalledAdapter:
    """One adapter folder the store knows about; ``error`` is set (and it is inactive) if it is unusable."""

    name: str
    path: Path
    origin: str  # "bundled" | "local" | "hub"
    manifest: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def base_fingerprint(self) -> str | None:
        return self.manifest.get("base_fingerprint")

    @property
    def heldout_gain(self) -> str:
        """``"25.10 → 26.40 dB"``: held-out PSNR of the base and of the adapter, or "" if not recorded."""
        m = self.manifest.get("metrics", {})
        if "heldout_psnr_base" in m and "heldout_psnr_adapter" in m:
            return f"{m['heldout_psnr_base']:.2f} → {m['heldout_psnr_adapter']:.2f} dB"
        return ""


def _read(path: Path, origin: str) -> InstalledAdapter:
    name = path.name
    try:
        read_peft_adapter(path)  # config and tensors readable, safetensors only
        manifest = read_manifest(path)
        if not manifest:
            raise AdapterFileError(f"{path}: no air-restore manifest")
    except AdapterFileError as e:
        return InstalledAdapter(name, path, origin, error=str(e))
    source = {}
    if (path / SOURCE_FILE).is_file():
        try:
            source = json.loads((path / SOURCE_FILE).read_text())
        except ValueError:
            source = {}
    origin = source.get("kind", origin) if origin != "bundled" else origin
    item = InstalledAdapter(name, path, origin, manifest, source)
    recorded = source.get("weights_sha256")
    if recorded and _sha256(path / WEIGHTS_FILE) != recorded:
        item.error = (f"{path / WEIGHTS_FILE} changed since it was installed (its hash differs); "
                      f"reinstall or pull it again, or `air remove {name}`")
    elif manifest.get("name") != name:
        item.error = f"{path}: folder is named {name!r} but its manifest says {manifest.get('name')!r}"
    return item


def bundled_adapters() -> list[InstalledAdapter]:
    root = bundled_dir() / "adapters"
    return [_read(root / n, "bundled") for n in BUNDLED_ORDER if (root / n).is_dir()]


def local_adapters() -> list[InstalledAdapter]:
    root = adapters_dir()
    if not root.is_dir():
        return []
    return [_read(p, "local") for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def all_adapters(base_fingerprint: str | None = None) -> list[InstalledAdapter]:
    """Bundled then local adapters, with the reason each unusable one is inactive (wrong base, name clash)."""
    items = bundled_adapters() + local_adapters()
    bundled = {a.name for a in items if a.origin == "bundled"}
    for a in items:
        if a.error:
            continue
        if a.origin != "bundled" and a.name in bundled:
            a.error = f"name conflict: {a.name!r} is also a bundled adapter; remove it with `air remove {a.name}`"
        elif base_fingerprint and a.base_fingerprint != base_fingerprint:
            a.error = (f"made for base {a.base_fingerprint}, not the base in use ({base_fingerprint}); "
                       "retrain it with `air add-degradation`")
    return items


def active_adapters(base_fingerprint: str) -> list[InstalledAdapter]:
    """The adapters `air restore` blends, in the estimator's order."""
    return [a for a in all_adapters(base_fingerprint) if a.error is None]


def find_adapter(name: str, base_fingerprint: str | None = None) -> InstalledAdapter:
    items = all_adapters(base_fingerprint)
    for a in items:
        if a.name == name:
            return a
    names = ", ".join(a.name for a in items) or "none"
    raise UnknownNameError(f"no installed adapter named {name!r}; installed: {names}")


def install_adapter(src: str | Path, *, source: dict | None = None, overwrite: bool = False) -> Path:
    """Copy an adapter folder into the store under its manifest's name, atomically; returns its path.

    Refuses a folder that is not a readable adapter with our manifest, a name taken by a bundled adapter,
    and (unless ``overwrite``) a name already in the store.
    """
    src = Path(src)
    read_peft_adapter(src)
    manifest = read_manifest(src)
    if not manifest:
        raise AdapterFileError(f"{src}: no air-restore manifest (make adapters with `air add-degradation`)")
    name = manifest.get("name", "")
    if not NAME_RE.match(str(name)):
        raise AdapterFileError(f"{src}: manifest name {name!r} is not a valid adapter name")
    if name in BUNDLED_ORDER:
        raise FileExistsError(f"{name!r} is a bundled adapter; give yours another name")
    sweep_leftovers()
    root = adapters_dir()
    dest = root / name
    if dest.exists() and not overwrite:
        raise FileExistsError(f"adapter {name!r} is already installed at {dest} (pass --overwrite to replace it)")
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".*", SOURCE_FILE))
        record = {**(source or {"kind": "local", "from": str(src.resolve())}),
                  "weights_sha256": _sha256(tmp / WEIGHTS_FILE)}  # checked at every load
        (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=1))
        old = None
        if dest.exists():
            old = root / f".{name}.{uuid.uuid4().hex[:8]}.old"
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def remove_adapter(name: str) -> Path:
    """Delete a local adapter; bundled ones cannot be removed (a local one that a bundled one of the same name
    shadows can). Returns the removed path.

    ``name`` is a name, never a path: anything that is not a valid adapter name (``/tmp``, ``.``,
    ``../x``) is refused before the file system is touched, and only a real folder directly inside
    the store's ``adapters/`` that holds an adapter manifest is ever deleted.
    """
    if not NAME_RE.match(str(name)):
        raise InvalidValueError(
            f"{name!r} is not an adapter name (lowercase letters, digits or '_', starting with a letter; "
            "see `air list`)"
        )
    root = adapters_dir()
    dest = root / name
    is_entry = (dest.is_dir() and not dest.is_symlink() and dest.resolve().parent == root.resolve()
                and (dest / "air_manifest.json").is_file())
    if not is_entry:  # a local adapter the bundled one of its name shadows (made before it was bundled) can go
        if name in BUNDLED_ORDER:
            raise PermissionError(f"{name!r} is a bundled adapter and cannot be removed")
        names = ", ".join(a.name for a in local_adapters()) or "none"
        raise UnknownNameError(f"no local adapter named {name!r}; local adapters: {names}")
    trash = dest.with_name(f".{name}.{uuid.uuid4().hex[:8]}.removed")
    dest.rename(trash)  # one atomic step; then clean up
    shutil.rmtree(trash, ignore_errors=True)
    return dest


# Model files moved to air_restore.core.io.weights (library code); their old names here still work.
_MOVED = ('BaseModelInfo', 'ModelFileError', 'first_non_finite', 'load_estimator', 'read_base_info', 'read_estimator', 'save_base', 'save_estimator')


def __getattr__(name: str):
    if name in _MOVED:
        import warnings

        warnings.warn(f"air_restore.registry.store.{name} moved to air_restore.core.io.weights.{name}",
                      DeprecationWarning, stacklevel=2)
        return getattr(weights, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

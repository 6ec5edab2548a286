"""Plugin discovery through the ``air_restore.plugins`` entry-point group.

Three phases, lazily (nothing happens at import time): find entry points (reads metadata, imports
nothing), load each (any failure is wrapped in :class:`PluginLoadError` naming package and entry
point), validate (type and manifest). One broken plugin never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from ..plugins.api import DegradationPlugin, RefinerPlugin
from ..core.errors import UserError, UnknownNameError

GROUP = "air_restore.plugins"


class PluginLoadError(UserError):
    """A plugin could not be imported or is not a valid plugin object."""


@dataclass(frozen=True)
class PluginRecord:
    entry_point: EntryPoint
    package: str
    plugin: DegradationPlugin | RefinerPlugin | None = None
    error: str | None = None

    @property
    def display(self) -> str:
        return f"{self.package}[{self.entry_point.name}]"


def find() -> list[tuple[EntryPoint, str]]:
    """Phase 1: entry points of the group with their distribution names, sorted; imports nothing."""
    found = []
    for ep in entry_points(group=GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        found.append((ep, dist))
    return sorted(found, key=lambda t: (t[0].name, t[1]))


def load(ep: EntryPoint, package: str) -> PluginRecord:
    """Phases 2 and 3: import and validate one entry point; failures become the record's error."""
    try:
        obj = ep.load()
    except Exception as e:  # any import-time failure of third-party code
        return PluginRecord(ep, package, error=f"import failed: {type(e).__name__}: {e}")
    if not isinstance(obj, (DegradationPlugin, RefinerPlugin)):
        return PluginRecord(
            ep, package, error=f"{ep.value} is a {type(obj).__name__}, not a DegradationPlugin or RefinerPlugin"
        )
    if obj.name != ep.name:
        return PluginRecord(ep, package, error=f"entry point is named {ep.name!r} but the manifest says {obj.name!r}")
    return PluginRecord(ep, package, plugin=obj)


@lru_cache(maxsize=1)
def discover() -> tuple[PluginRecord, ...]:
    """All plugin records, good and broken, in a fixed order (cached; call ``discover.cache_clear()``)."""
    records = [load(ep, pkg) for ep, pkg in find()]
    names: dict[str, int] = {}
    for r in records:
        names[r.entry_point.name] = names.get(r.entry_point.name, 0) + 1
    out = []
    for r in records:
        if r.error is None and names[r.entry_point.name] > 1:
            r = PluginRecord(r.entry_point, r.package, error=f"name conflict: {names[r.entry_point.name]} plugins are named {r.entry_point.name!r}")
        out.append(r)
    return tuple(out)


def _get(name: str, cls: type, kind: str):
    for r in discover():
        if r.entry_point.name == name:
            if r.plugin is None:
                raise PluginLoadError(f"plugin {r.display} is broken: {r.error}")
            if not isinstance(r.plugin, cls):
                raise UnknownNameError(f"plugin {name!r} is a {r.plugin.manifest.kind}, not a {kind}")
            return r.plugin
    available = ", ".join(r.entry_point.name for r in discover() if isinstance(r.plugin, cls)) or "none"
    raise UnknownNameError(f"no {kind} plugin named {name!r}; available: {available}")


def get_degradation(name: str) -> DegradationPlugin:
    """The working degradation plugin called ``name``; a clear error lists the ones available."""
    return _get(name, DegradationPlugin, "degradation")


def get_refiner(name: str) -> RefinerPlugin:
    """The working refiner plugin called ``name`` (e.g. 'udair'); a clear error lists the ones available."""
    return _get(name, RefinerPlugin, "refiner")

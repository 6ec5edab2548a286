"""``air doctor``: check everything ``air restore`` would load, and say what to do about each problem.

Every file is opened as ``air restore`` opens it (so the same checks run: safetensors only, metadata,
fingerprint, recorded sha256, finite values), plus the plugins and the store's leftovers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Finding:
    what: str  # the thing checked: "base", "adapter rain", "estimator (local)", ...
    ok: bool
    detail: str  # what was found, or the problem and its fix


def check_everything() -> list[Finding]:
    from air_restore.registry.adapters import AdapterFileError, load_for_base
    from air_restore.registry.discovery import discover
    from air_restore.registry.local import (
        air_home, all_adapters, bundled_estimator_path, leftovers, local_estimator_path,
    )
    from air_restore.registry.pipeline import PipelineError, load_udair_refiner, pick_estimator
    from air_restore.registry.store import ModelFileError, bundled_base_path, load_base, read_estimator

    out: list[Finding] = []
    try:
        _, info = load_base(bundled_base_path())  # checks the fingerprint against the tensors
        fingerprint = info.fingerprint
        out.append(Finding("base", True, f"{bundled_base_path().name} ({fingerprint})"))
    except ModelFileError as e:
        out.append(Finding("base", False, f"{e}; reinstall air-restore"))
        return out
    active = []
    for a in all_adapters(fingerprint):
        label = f"adapter {a.name} ({a.origin})"
        if a.error is not None:
            out.append(Finding(label, False, a.error))
            continue
        try:
            load_for_base(a.path, fingerprint)
        except AdapterFileError as e:
            out.append(Finding(label, False, f"{e}; `air remove {a.name}` and install it again"))
            continue
        active.append(a.name)
        out.append(Finding(label, True, "active"))
    for where, path in (("local", local_estimator_path()), ("bundled", bundled_estimator_path())):
        if not path.is_file():
            continue
        try:
            est = read_estimator(path)  # refuses damaged files (NaN/Inf, bad metadata), as air restore does
            out.append(Finding(f"estimator ({where})", True, f"adapters {', '.join(est.config.adapters)}"))
        except ModelFileError as e:
            out.append(Finding(f"estimator ({where})", False, str(e)))
    _, _, warnings = pick_estimator(active)
    for w in warnings:
        if not w.startswith("ignoring estimator:"):  # unreadable files are reported above
            out.append(Finding("estimator choice", False, w))
    try:
        load_udair_refiner(fingerprint)
        out.append(Finding("refiner udair (--tta)", True, "loads, trained on this base"))
    except PipelineError as e:
        out.append(Finding("refiner udair (--tta)", False, str(e).removeprefix("--tta: ")))
    for r in discover():
        label = f"plugin {r.entry_point.name}"
        out.append(Finding(label, r.plugin is not None, "ok" if r.plugin else f"broken: {r.error}"))
    left = leftovers()
    if left:
        out.append(Finding("store", False, f"{len(left)} leftover(s) of interrupted commands in {air_home()} "
                           f"({', '.join(sorted(p.name for p in left)[:3])}); the next install, pull or "
                           "add-degradation removes those older than a day"))
    return out

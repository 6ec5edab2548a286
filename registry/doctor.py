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
    from .adapters import AdapterFileError, load_for_base
    from .discovery import discover
    from .store import (
        air_home, all_adapters, bundled_estimator_path, leftovers, local_estimator_path,
    )
    from .pipeline import PipelineError, load_udair_refiner, pick_estimator
    from ..core.io.weights import ModelFileError, read_estimator
    from .store import bundled_base_path, load_base

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


def check_plugin(name: str) -> tuple[list[str], list[str]]:
    """``air plugins validate NAME``: load every plugin of that name and check it (entry point, manifest,
    base fingerprint, and its synthesizer's shape, range and seeded reproducibility). Returns (lines
    describing what was found, problems); an unknown name is an UnknownNameError."""
    import torch

    from ..core.errors import UnknownNameError
    from ..core.io.weights import ModelFileError, read_base_info
    from .discovery import discover
    from .store import bundled_base_path

    records = [r for r in discover() if r.entry_point.name == name]
    if not records:
        installed = ", ".join(r.entry_point.name for r in discover()) or "none"
        raise UnknownNameError(f"no plugin named {name!r}; installed: {installed}")
    try:
        base_fp = read_base_info(bundled_base_path()).fingerprint
    except ModelFileError:
        base_fp = None
    lines, problems = [], []
    for r in records:
        if r.plugin is None:
            problems.append(f"{r.display}: {r.error}")
            continue
        m = r.plugin.manifest
        lines.append(f"{r.display}: {m.kind} plugin {m.name} {m.version} — {m.description}")
        if m.base_fingerprint and base_fp and m.base_fingerprint != base_fp:
            problems.append(f"{r.display}: made for base {m.base_fingerprint}, the installed base is {base_fp}")
        synth = getattr(r.plugin, "synthesize", None)
        if synth is None:
            continue
        x = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
        try:
            outs = [synth(x, torch.Generator().manual_seed(1), s) for s in (0.0, 1.0)]
            again = synth(x, torch.Generator().manual_seed(1), 1.0)
        except Exception as e:  # third-party code
            problems.append(f"{r.display}: synthesizer failed: {type(e).__name__}: {e}")
            continue
        for s, y in zip((0.0, 1.0), outs):
            if not isinstance(y, torch.Tensor) or y.shape != x.shape:
                problems.append(f"{r.display}: synthesizer returned {getattr(y, 'shape', type(y))} for input "
                                f"{tuple(x.shape)} at severity {s}")
            elif not bool(torch.isfinite(y).all()) or float(y.min()) < 0 or float(y.max()) > 1:
                problems.append(f"{r.display}: synthesizer output at severity {s} is not finite in [0, 1]")
        if not problems and not torch.equal(outs[1], again):
            problems.append(f"{r.display}: synthesizer is not reproducible from the generator (uses global RNG?)")
        if not problems:
            lines.append(f"  synthesizer: ok (shape, range [0, 1], reproducible from its generator; "
                         f"change at severity 1: {float((outs[1] - x).abs().mean()):.3f})")
    if len(records) > 1:
        problems.append(f"name conflict: {len(records)} plugins are named {name!r}: "
                        + ", ".join(r.display for r in records))
    return lines, problems

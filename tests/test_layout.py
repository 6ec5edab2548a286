"""The layout is the architecture: each code folder imports only the folders below it.

core (the library) imports none of plugins, registry, cli; plugins import core (and plugins.api);
registry imports core and plugins; cli imports anything. The import statements are read from the
source (AST), lazy imports inside functions included, so a shortcut through a function body is caught too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "core": {"core"},
    "plugins": {"core", "plugins"},
    "registry": {"core", "plugins", "registry"},
}
# The plugin contract suite runs a plugin the way air-restore does (discovered, on the bundled base), so it
# stands above the registry; plugins themselves never import it.
ABOVE_REGISTRY = {"plugins/testing.py"}


def _imported_folders(path: Path, folder: str) -> set[tuple[int, str]]:
    """(line, top folder) of every air_restore import in ``path`` (absolute or relative)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                targets = [node.module or ""]
            else:  # relative: climb node.level packages from the file's own package
                parts = [folder, *path.relative_to(ROOT / folder).parts[:-1]]
                up = parts[: len(parts) - (node.level - 1)] if node.level - 1 < len(parts) else []
                targets = [".".join(["air_restore", *up, *(node.module.split(".") if node.module else [])])]
        for name in targets:
            bits = name.split(".")
            if bits[0] == "air_restore" and len(bits) > 1:
                found.add((node.lineno, bits[1]))
    return found


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_each_folder_imports_only_the_folders_below_it(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        if str(path.relative_to(ROOT)) in ABOVE_REGISTRY:
            continue
        for line, top in sorted(_imported_folders(path, folder)):
            if top not in ALLOWED[folder]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports air_restore.{top}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_the_scan_sees_relative_and_lazy_imports():
    """The checker itself: a lazy absolute import and a relative one that climbs into registry are both found."""
    pkg = ROOT / "core"
    src = "def f():\n    from air_restore.registry import store\n\nfrom ..registry import hub\n"
    probe = pkg / "_layout_probe.py"
    probe.write_text(src)
    try:
        found = _imported_folders(probe, "core")
    finally:
        probe.unlink()
    assert found == {(2, "registry"), (4, "registry")}


def _command_functions():
    """(module path, function node) of every function in cli/commands (the commands and their helpers)."""
    for path in sorted((ROOT / "cli" / "commands").glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                yield path, node


def test_commands_are_thin():
    """A command parses options, calls one function of core/registry and prints: its body (after the
    docstring; the option declarations are its signature) stays under 60 lines."""
    found, long = 0, []
    for path, fn in _command_functions():
        found += 1
        body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant) else fn.body
        lines = body[-1].end_lineno - body[0].lineno + 1
        if lines > 60:
            long.append(f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}: {lines} lines")
    assert found >= 17, f"only {found} functions found in cli/commands: the scan is broken"
    assert not long, "commands with logic that belongs in core/registry:\n" + "\n".join(long)


def test_every_module_fits_in_one_read():
    """A module is one job: none of the library's stays over 450 lines (split by job, as core/synthesis.py out
    of core/degradations.py and registry/restorer.py out of registry/pipeline.py, #12)."""
    sizes = {path: len(path.read_text().splitlines()) for folder in ("core", "plugins", "registry", "cli")
             for path in (ROOT / folder).rglob("*.py")}
    assert len(sizes) > 50, "the scan found too few modules: it is broken"
    long = [f"{path.relative_to(ROOT)}: {n} lines" for path, n in sorted(sizes.items()) if n > 450]
    assert not long, "modules to split by job:\n" + "\n".join(long)


def test_every_command_is_registered_once():
    from typer.main import get_command

    from air_restore.cli.main import app

    cli = get_command(app)
    names = sorted(cli.commands)
    assert names == sorted(["restore", "serve", "batch", "eval", "list", "doctor", "push", "pull", "search",
                            "add-degradation", "remove", "plugins", "train"])
    assert sorted(cli.commands["train"].commands) == ["adapter", "base", "estimator", "udair"]
    assert sorted(cli.commands["plugins"].commands) == ["validate"]


def test_user_facing_errors_share_one_type():
    """Every error a user should read as a message derives from UserError, which the CLI prints as one line;
    an unknown name is still a KeyError for old callers, but reads without KeyError's quotes."""
    from air_restore.core.errors import InvalidValueError, UnknownNameError, UserError
    from air_restore.core.io.images import ImageReadError
    from air_restore.core.io.weights import ModelFileError
    from air_restore.plugins.udair import UdairFileError
    from air_restore.registry.adapters import AdapterFileError
    from air_restore.registry.batch import BatchError
    from air_restore.registry.discovery import PluginLoadError
    from air_restore.registry.hub import HubError
    from air_restore.registry.pipeline import PipelineError

    for cls in (ImageReadError, ModelFileError, UdairFileError, AdapterFileError, BatchError, PluginLoadError,
                HubError, PipelineError, InvalidValueError, UnknownNameError):
        assert issubclass(cls, UserError), cls
    e = UnknownNameError("no installed adapter named 'x'; installed: noise")
    assert isinstance(e, KeyError) and str(e) == "no installed adapter named 'x'; installed: noise"
    assert issubclass(InvalidValueError, ValueError) and issubclass(PipelineError, ValueError)


def test_unknown_adapter_name_is_one_line_without_quotes(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from air_restore.cli.main import app

    monkeypatch.setenv("AIR_HOME", str(tmp_path / "home"))
    r = CliRunner().invoke(app, ["remove", "nosuch"])
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith("error: no local adapter named 'nosuch'"), r.output
    assert not lines[0].endswith("'") or lines[0].count("'") % 2 == 0  # KeyError's repr would add a quote pair


@pytest.mark.parametrize("old, new", [
    ("air_restore.cli.train", "air_restore.core.training.base"),
    ("air_restore.cli.train_adapter", "air_restore.core.training.adapter"),
    ("air_restore.cli.train_estimator", "air_restore.core.training.estimator"),
    ("air_restore.cli.train_udair", "air_restore.plugins.udair_training"),
    ("air_restore.cli.add_degradation", "air_restore.registry.add_degradation"),
    ("air_restore.cli.evaluate", "air_restore.core.evaluation"),
    ("air_restore.registry.local", "air_restore.registry.store"),
])
def test_moved_modules_still_import_with_a_warning(old, new):
    """Code written against the old layout keeps working, told where the module went."""
    import subprocess
    import sys

    code = (f"import warnings; warnings.simplefilter('always')\n"
            f"with warnings.catch_warnings(record=True) as w:\n    import {old} as m\n"
            f"import {new} as n\n"
            f"print(any(issubclass(x.category, DeprecationWarning) and '{new}' in str(x.message) for x in w))\n"
            f"own = [k for k, v in vars(n).items() if not k.startswith('_') and getattr(v, '__module__', '') == n.__name__]\n"
            f"print(bool(own) and all(getattr(m, k) is getattr(n, k) for k in own))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"], out.stdout + out.stderr


def test_one_training_loop():
    """Every trainer (base, chunked base, adapter, estimator, UDAIR) steps through core.training.engine:
    no other module builds an optimizer or calls backward, except UDAIR's per-image test-time adaptation."""
    allowed = {"core/training/engine.py", "plugins/udair.py"}
    found = []
    for path in sorted(p for folder in ("core", "plugins", "registry", "cli") for p in (ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if isinstance(node, ast.Attribute) and node.attr in ("AdamW", "Adam", "SGD", "backward") and rel not in allowed:
                found.append(f"{rel}:{node.lineno} {node.attr}")
    assert not found, "a training loop outside the engine:\n" + "\n".join(found)
    uses = [p for p in ("core/training/base.py", "core/training/chunks.py", "core/training/adapter.py",
                        "core/training/estimator.py", "plugins/udair_training.py") if "engine" in (ROOT / p).read_text().lower()]
    assert len(uses) == 5, uses

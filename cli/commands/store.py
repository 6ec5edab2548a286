"""``air list``, ``air doctor``, ``air remove``: what is installed, whether it is sound, and removing it."""

from __future__ import annotations

import typer
from rich.markup import escape

from ..ui import error, say, stdout, warn


def list_cmd() -> None:
    """List the adapters `air restore` blends and the plugins (built-in and installed), with their status."""
    from rich.table import Table

    from ...core.io.weights import ModelFileError, read_base_info
    from ...registry.discovery import discover
    from ...registry.restorer import pick_estimator
    from ...registry.store import air_home, all_adapters, bundled_base_path

    try:
        fingerprint = read_base_info(bundled_base_path()).fingerprint
    except ModelFileError as e:
        fingerprint = None
        error(str(e))
    items = all_adapters(fingerprint)
    table = Table(title="adapters", show_edge=False)
    for col in ("name", "origin", "rank", "held-out PSNR base → adapter", "status"):
        table.add_column(col)
    for a in items:
        status = "active" if a.error is None else f"[red]inactive[/red]: {escape(a.error)}"
        table.add_row(escape(a.name), a.origin, str(a.manifest.get("rank", "?")), a.heldout_gain, status)
    stdout.print(table)
    _, est_path, warnings = pick_estimator([a.name for a in items if a.error is None])
    say(f"estimator: {est_path or 'none'}")
    for w in warnings:
        warn(w, out=stdout)
    say(f"local store: {air_home()} (set AIR_HOME to move it)")
    table = Table(title="plugins", show_edge=False)
    for col in ("name", "kind", "source", "version", "status"):
        table.add_column(col)
    for r in discover():
        if r.plugin:
            m = r.plugin.manifest
            table.add_row(escape(m.name), m.kind, escape(r.display), escape(m.version), "ok")
        else:
            table.add_row(escape(r.entry_point.name), "?", escape(r.display), "?", f"[red]broken[/red]: {escape(r.error)}")
    stdout.print(table)


def doctor_cmd() -> None:
    """Check everything `air restore` would load: the base, every adapter (readable, made for this base,
    unchanged since install, finite values), the estimators, the --tta refiner, the plugins and the
    store's leftovers. Each problem comes with its fix; exit code 1 if there is any.
    """
    from rich.table import Table

    from ...registry.doctor import check_everything

    findings = check_everything()
    table = Table(show_edge=False)
    for col in ("checked", "", "found"):
        table.add_column(col)
    for f in findings:
        table.add_row(escape(f.what), "[green]ok[/green]" if f.ok else "[red]problem[/red]", escape(f.detail))
    stdout.print(table)
    problems = sum(not f.ok for f in findings)
    stdout.print("all good" if not problems else f"{problems} problem(s)", highlight=False)
    if problems:
        raise typer.Exit(1)


def remove_cmd(name: str = typer.Argument(..., help="Name of an adapter in the local store (see `air list`).")) -> None:
    """Remove an adapter from the local store (bundled adapters cannot be removed).

    The estimator then no longer matches the adapter set: `air restore` warns and gives the adapters it
    does not know weight 0 until you run `air train estimator --install`.
    """
    from ...core.errors import UserError
    from ...core.io.weights import read_base_info
    from ...registry.restorer import pick_estimator
    from ...registry.store import active_adapters, bundled_base_path, remove_adapter

    try:
        path = remove_adapter(name)
    except OSError as e:  # PermissionError and the like: the store is not writable
        raise UserError(str(e)) from None
    say(f"removed {name} ({path})")
    _, _, warnings = pick_estimator([a.name for a in active_adapters(read_base_info(bundled_base_path()).fingerprint)])
    for w in warnings:
        warn(w)

"""``air plugins ...``: check degradation and refiner plugins."""

from __future__ import annotations

import typer
from rich.markup import escape

from ..ui import console, say


def validate(name: str = typer.Argument(..., help="Plugin name (see `air list`).")) -> None:
    """Load one plugin and check it: entry point, manifest, synthesizer output, base fingerprint.

    Exit code 0 if it is usable, 1 with the reasons if not.
    """
    from ...registry.doctor import check_plugin

    lines, problems = check_plugin(name)
    for line in lines:
        say(line)
    for p in problems:
        console.print(f"[red]problem[/red]: {escape(p)}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    say("ok")

"""The ``air`` command: one typer app whose commands live one group per module in :mod:`.commands`.

Each command is a thin call into core/registry; any :class:`~air_restore.core.errors.UserError` it lets
through is printed as ``error: <message>`` with exit code 2 (:func:`.ui.user_errors`).
"""

from __future__ import annotations

import typer

from .commands import add_degradation, batch, evaluate, hub, plugins, restore, serve, store, train
from .ui import flag, user_errors

app = typer.Typer(
    name="air",
    help="air-restore: blind all-in-one image restoration (noise, blur, haze, rain, low light).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
train_app = typer.Typer(help="Train the models.", no_args_is_help=True)
plugins_app = typer.Typer(help="Check degradation and refiner plugins.", no_args_is_help=True)


def _version_callback(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import version

    from ..registry.discovery import discover

    typer.echo(f"air-restore {version('air-restore')}")
    for r in discover():
        status = r.plugin.manifest.version if r.plugin else f"BROKEN ({r.error})"
        typer.echo(f"  {r.display}: {status}")
    raise typer.Exit()


@app.callback()
def _main(
    version: bool = flag(
        "--version", callback=_version_callback, is_eager=True, help="Show versions of air-restore and its plugins."
    ),
) -> None:
    """Restore photos without saying what is wrong with them.

    Start with:  air restore photo.jpg   (writes photo_restored.jpg beside it)
    """


# The order here is the order of `air --help`.
for _name, _fn in (
    ("restore", restore.restore),
    ("serve", serve.serve_cmd),
    ("batch", batch.batch_cmd),
    ("eval", evaluate.eval_cmd),
    ("list", store.list_cmd),
    ("doctor", store.doctor_cmd),
    ("push", hub.push_cmd),
    ("pull", hub.pull_cmd),
    ("search", hub.search_cmd),
    ("add-degradation", add_degradation.add_degradation),
    ("remove", store.remove_cmd),
):
    app.command(_name)(user_errors(_fn))
app.add_typer(plugins_app, name="plugins")
plugins_app.command("validate")(user_errors(plugins.validate))
app.add_typer(train_app, name="train")
for _name, _fn in (("base", train.base), ("adapter", train.adapter), ("estimator", train.estimator),
                   ("udair", train.udair)):
    train_app.command(_name)(user_errors(_fn))


if __name__ == "__main__":
    app()

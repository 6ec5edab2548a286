"""What every ``air`` command shares: where output goes, how an option looks, how a problem is told.

Results (what was written where, tables, summaries) go to stdout; progress, warnings and errors to
stderr, so that ``air restore ... > log.txt`` keeps the results. A command never formats an error
itself: it raises (or lets through) :class:`~air_restore.core.errors.UserError`, and
:func:`user_errors` prints ``error: <message>`` and exits 2.
"""

from __future__ import annotations

import functools
import signal
import threading
from typing import Callable, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..core.errors import UserError

console = Console(stderr=True)
stdout = Console()

F = TypeVar("F", bound=Callable)


def _untyped_help(get_help_option: Callable) -> Callable:
    def get(self, ctx):
        option = get_help_option(self, ctx)
        if option is not None:
            option.metavar = ""  # typer 0.29 with click 8.5 shows `--help <bool>`, as if it took a value
        return option

    return get


for _cls in (typer.core.TyperCommand, typer.core.TyperGroup):
    _cls.get_help_option = _untyped_help(_cls.get_help_option)


def flag(*decls: str, help: str, **kw) -> bool:
    """An on/off option (default off). Shown without typer's ``<bool>`` type column, which would read as if
    the flag took a value."""
    return typer.Option(False, *decls, help=help, metavar="", **kw)


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line message (exit code 2)."""
    raise UserError(message)


def say(text: str, *, out: Console = stdout) -> None:
    """Print plain text (no markup, no highlighting, no hard wrapping of long paths)."""
    out.print(escape(text), highlight=False, soft_wrap=True)


def warn(text: str, *, out: Console = console) -> None:
    out.print(f"[yellow]warning[/yellow]: {escape(text)}", highlight=False, soft_wrap=True)


def error(text: str, *, out: Console = console) -> None:
    out.print(f"[red]error[/red]: {escape(text)}", highlight=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """Wrap a command so that any UserError it raises becomes ``error: <message>`` and exit code 2."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            error(str(e))
            raise typer.Exit(2) from None

    return run  # type: ignore[return-value]


class CtrlC:
    """Ctrl-C that cannot be lost: inside ``with CtrlC() as c``, call ``c.check()`` between units of work.

    Ctrl-C raises KeyboardInterrupt wherever Python happens to be; when that is a weakref callback (importlib's
    module locks, torch's caches) the exception is printed as "Exception ignored in ..." and dropped, and a
    100000-step `air add-degradation` went on training (CI). Here the press is also latched, and ``check``
    raises it again. A SIGINT that was ignored (`nohup`, `cmd &`) stays ignored.

    ``at_once=False``: the first press only latches, and ``check`` is where it is raised: a job that must not stop
    between two steps that belong together (a file written and then counted) calls ``check`` only between them. A
    second press raises at once (someone who presses twice wants out now)."""

    def __init__(self, *, at_once: bool = True) -> None:
        self.pressed = False
        self.at_once = at_once
        self._old = None

    def __enter__(self) -> "CtrlC":
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None

    def _handler(self, signum, frame) -> None:
        again, self.pressed = self.pressed, True
        if self.at_once or again:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if Ctrl-C was pressed (whether or not its first one got through)."""
        if self.pressed:
            raise KeyboardInterrupt


class StageBars:
    """Progress bars for a job that reports ``progress(stage, done, total)``: one bar per stage, shown in
    the order the stages first report, labelled from ``labels`` (the stage name if absent)."""

    #: Where the output is not a terminal (a log file, ``nohup``, a CI job), a bar cannot redraw itself and
    #: rich would show nothing until the job ends: a plain line is printed at every 1/LOG_PARTS of a stage.
    LOG_PARTS = 10

    def __init__(self, labels: dict[str, str] | None = None, *, fields: bool = False, out: Console = console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        if fields:
            columns.append(TextColumn("{task.fields[info]}"))
        self.bar = Progress(*columns, console=out)
        self.labels = labels or {}
        self.tasks: dict[str, object] = {}
        self.logged: dict[str, int] = {}  # stage → the last part printed (not a terminal)
        self.ctrl_c = CtrlC()

    def __enter__(self) -> "StageBars":
        self.ctrl_c.__enter__()
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)
        self.ctrl_c.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int | None, info: str = "") -> None:
        self.ctrl_c.check()
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(self.labels.get(stage, stage), total=total, info="")
        self.bar.update(self.tasks[stage], completed=done, total=total, **({"info": info} if info else {}))
        if not self.bar.console.is_terminal and total:
            bucket = done * self.LOG_PARTS // total
            if bucket > self.logged.get(stage, 0):
                self.logged[stage] = bucket
                say(f"{self.labels.get(stage, stage)}: {done}/{total}" + (f" {info}" if info else ""),
                    out=self.bar.console)

    def log(self, text: str) -> None:
        """A line printed above the bars."""
        say(text, out=self.bar.console)

"""The one error type for problems a user can fix.

Every error a user should see as a message rather than a traceback derives from :class:`UserError`:
a bad image (``ImageReadError``), a damaged or foreign weights file (``ModelFileError``,
``AdapterFileError``), a broken plugin (``PluginLoadError``), a Hub refusal (``HubError``), a wrong
option value (``PipelineError``, ``BatchError``), an unknown name (:class:`UnknownNameError`). Its
message is one line that names the file or name and says what to do. The ``air`` command prints it as
``error: <message>`` with exit code 2; library users catch ``UserError`` once.
"""

from __future__ import annotations

__all__ = ["InvalidValueError", "MissingPathError", "UnknownNameError", "UserError"]


class UserError(Exception):
    """A problem the user can fix; ``str(e)`` is the one-line message to show."""

    def __str__(self) -> str:  # never KeyError's quoted repr, whatever else a subclass derives from
        return str(self.args[0]) if self.args else ""


class UnknownNameError(UserError, KeyError):
    """A name (adapter, plugin) that is not installed; the message lists what is. A ``KeyError`` too, so
    ``except KeyError`` around a lookup keeps working."""


class InvalidValueError(UserError, ValueError):
    """A value the user gave (an option, a folder's contents, a spec) that cannot be used. A ``ValueError``
    too, for callers that catch that."""


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder the user named does not exist."""

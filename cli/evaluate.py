"""Deprecated location: this module moved to :mod:`air_restore.core.evaluation` (library code, not CLI code).
It re-exports that module's names with a DeprecationWarning and will be removed in a later release."""

import warnings

from ..core.evaluation import *  # noqa: F401,F403

warnings.warn("air_restore.cli.evaluate is deprecated; import from air_restore.core.evaluation", DeprecationWarning, stacklevel=2)

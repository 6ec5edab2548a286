"""Deprecated location: this module moved to :mod:`air_restore.plugins.udair_training` (library code, not CLI code).
It re-exports that module's names with a DeprecationWarning and will be removed in a later release."""

import warnings

from ..plugins.udair_training import *  # noqa: F401,F403

warnings.warn("air_restore.cli.train_udair is deprecated; import from air_restore.plugins.udair_training", DeprecationWarning, stacklevel=2)

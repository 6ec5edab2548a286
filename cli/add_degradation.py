"""Deprecated location: this module moved to :mod:`air_restore.registry.add_degradation` (library code, not CLI code).
It re-exports that module's names with a DeprecationWarning and will be removed in a later release."""

import warnings

from ..registry.add_degradation import *  # noqa: F401,F403

warnings.warn("air_restore.cli.add_degradation is deprecated; import from air_restore.registry.add_degradation", DeprecationWarning, stacklevel=2)

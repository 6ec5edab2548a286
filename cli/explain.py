"""Deprecated location: the degradation map lives in :mod:`air_restore.core.explain`."""

from ..core.explain import class_colours, class_shares, degradation_map  # noqa: F401

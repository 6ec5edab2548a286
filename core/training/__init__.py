"""Training of every model air-restore ships: the base (:mod:`.base`), LoRA adapters (:mod:`.adapter`) and
the estimator (:mod:`.estimator`); the UDAIR refiner's trainer ships with its plugin
(:mod:`air_restore.plugins.udair_training`). The functions take tensors, synthesizers and callbacks; the
CLI (``air train ...``, ``air add-degradation``) resolves names and files through the registry.

This ``__init__`` imports nothing heavy: the registry reads :data:`VIEWS_FILE` without importing torch.
"""

#: Beside an adapter: a few of its degraded training views, so that a later estimator can be trained for it
#: (`air push` / `air pull` carry this file too, hash-checked like the adapter files).
VIEWS_FILE = "air_estimator_views.safetensors"

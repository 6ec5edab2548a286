"""The ``air`` commands, one module per command group; :mod:`air_restore.cli.main` registers them.

restore (``air restore``) · serve · batch · evaluate (``air eval``) · store (``list``, ``doctor``,
``remove``) · hub (``push``, ``pull``, ``search``) · add_degradation · plugins (``plugins validate``) ·
train (``train base|adapter|estimator|udair``). A command parses its options, calls one function of
``core`` or ``registry`` and prints; shared pieces are in :mod:`..ui` and :mod:`..options`.
"""

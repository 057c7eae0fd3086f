"""The ``relay`` command line: a thin face over ``producers``, ``worker`` and ``sandbox``."""

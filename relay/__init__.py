"""interaction-relay core: the event contract, key names, the Redis state machine, stores and
errors that producers and workers both import. The command line lives in ``relay.cli``."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("interaction-relay")
except PackageNotFoundError:  # a source tree run without installing it
    __version__ = "0+unknown"

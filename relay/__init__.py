"""interaction-relay core: the event contract, key names, the Redis state machine, stores and
errors that producers and workers both import. The command line lives in ``relay.cli``."""

"""Exit codes of the ``relay`` CLI (stable: scripts depend on them)."""

OK = 0
FAILURE = 1  # the command ran and found a problem (check failed, some lines rejected)
USAGE = 2  # bad arguments or invalid input
UNAVAILABLE = 3  # Redis or the SOAP endpoint could not be reached
CONFIG = 4  # settings that cannot work
NOT_FOUND = 5  # no such event / dead letter

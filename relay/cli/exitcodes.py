"""Exit codes of the ``relay`` CLI (stable: scripts depend on them; README and ``relay --help``
list them from ``DESCRIPTIONS``)."""

OK = 0
FAILURE = 1  # the command ran and found a problem (check failed, some lines rejected)
USAGE = 2  # bad arguments or invalid input
UNAVAILABLE = 3  # Redis or the SOAP endpoint could not be reached
CONFIG = 4  # settings that cannot work
NOT_FOUND = 5  # no such event / dead letter

DESCRIPTIONS = {
    OK: "success",
    FAILURE: "ran, and found a problem (a check failed, lines were rejected, interrupted)",
    USAGE: "bad arguments or invalid input",
    UNAVAILABLE: "Redis (or the SOAP endpoint) could not be reached",
    CONFIG: "configuration that cannot work (a bad URL, a missing token)",
    NOT_FOUND: "no such event or dead letter",
}

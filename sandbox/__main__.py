"""``relay sandbox`` / ``python -m sandbox``: run the emulator.

The control API is off unless ``RELAY_SANDBOX_CONTROL_TOKEN`` is set (an environment variable,
not an option, so the token never shows in a process list); see ``sandbox.control``.
"""

from __future__ import annotations

import argparse
import os
import sys

from sandbox.app import DEFAULT_NAMESPACE, PATH, SandboxState, run
from sandbox.control import MIN_TOKEN, PREFIX, TOKEN_ENV, check_token
from sandbox.faults import FAULTS
from sandbox.seed import Seed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = (f"The control API ({PREFIX}: faults, seed, record of calls) is off unless "
                f"{TOKEN_ENV} holds a token of {MIN_TOKEN}+ characters; each control request "
                "then needs 'Authorization: Bearer <token>'. `relay dev` sets one for you.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8088)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--seed", metavar="FILE", help="JSON file replacing the default seed data")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    p.add_argument("--force-code", type=int, help="answer every call with this return code")
    p.add_argument("--next-id", type=int, default=1,
                   help="first InteractionId (a .NET long: may exceed 2^31)")
    p.add_argument("--outage-seconds", type=float, default=0.0,
                   help="fail every call (HTML 503) for this long from start-up")
    for fault in FAULTS:
        p.add_argument(f"--{fault}-rate", type=float, default=0.0, metavar="P",
                       help=f"probability of the {fault!r} fault per call")


def serve(args: argparse.Namespace) -> int:
    seed = Seed.load(args.seed) if args.seed else Seed()
    state = SandboxState(namespace=args.namespace, seed=seed)
    token = os.environ.get(TOKEN_ENV) or None
    try:
        if token is not None:
            check_token(token)
        state.set_next_id(args.next_id)
        state.faults.update({
            "latency_ms": args.latency_ms, "jitter_ms": args.jitter_ms,
            "force_code": args.force_code, "outage_seconds": args.outage_seconds,
            "rates": {f: getattr(args, f"{f}_rate") for f in FAULTS if getattr(args, f"{f}_rate")},
        })
    except ValueError as exc:
        print(f"relay sandbox: {exc}", file=sys.stderr)
        return 2
    control = (f"control: {PREFIX} with the bearer token in {TOKEN_ENV}" if token
               else f"control API off: set {TOKEN_ENV} to turn it on")
    print(f"sandbox: http://{args.host}:{args.port}{PATH} (WSDL: ?WSDL; {control})", flush=True)
    run(args.host, args.port, state, token)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    add_arguments(parser)
    raise SystemExit(serve(parser.parse_args()))

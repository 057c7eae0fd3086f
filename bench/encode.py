"""Time building one RecordInteraction request: the former xmltodict construction against the
precompiled template, in the same process, alternating, so both see the same machine state.
Times are this process's CPU time, so being descheduled on a busy machine does not count.

``.venv/bin/python -m bench.encode [--n 50000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import xmltodict

from relay.events import Interaction
from worker.secret import Secret
from worker.soap import SOAP11_NS, SoapRequest, build_request, default_action

EVENT = Interaction.create(account_id="123456789012", location="STORE-001",
                           interaction_type="VISIT", note="Checked in at the front desk & paid")
TOKEN = Secret("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
NAMESPACE = "https://app.smartbutton.com/Services/"


def old_build_request(event: Interaction, token: Secret) -> SoapRequest:
    """``worker.soap.build_request`` as it was before the template (SOAP 1.1, default action)."""
    fields = {
        "SecurityToken": token.reveal(),
        "AccountId": event.account_id,
        "LocationExternalReference": event.location,
        "InteractionTypeExternalReference": event.interaction_type,
        "InteractionNote": event.note,
    }
    envelope = {
        "soap:Envelope": {
            "@xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "@xmlns:xsd": "http://www.w3.org/2001/XMLSchema",
            "@xmlns:soap": SOAP11_NS,
            "soap:Body": {"RecordInteraction": {"@xmlns": NAMESPACE,
                                                "preqRecordInteraction": fields}},
        }
    }
    xml: str = xmltodict.unparse(envelope, encoding="utf-8")
    body = xml.replace("\r", "&#13;").encode("utf-8")
    headers = {"Content-Type": "text/xml; charset=utf-8",
               "SOAPAction": f'"{default_action(NAMESPACE)}"'}
    return SoapRequest(body, headers)


def new_build_request(event: Interaction, token: Secret) -> SoapRequest:
    return build_request(event, token, namespace=NAMESPACE)


def per_encode_us(encode: Callable[[Interaction, Secret], SoapRequest], n: int) -> float:
    started = time.process_time_ns()
    for _ in range(n):
        encode(EVENT, TOKEN)
    return (time.process_time_ns() - started) / n / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=50_000, help="encodes per timing")
    parser.add_argument("--repeat", type=int, default=5, help="timings of each")
    args = parser.parse_args()
    # The two must put the same bytes on the wire for this event, or the timing means nothing.
    body = new_build_request(EVENT, TOKEN).body
    if old_build_request(EVENT, TOKEN).body != body:
        raise SystemExit("old and new bodies differ")
    old: list[float] = []
    new: list[float] = []
    for _ in range(args.repeat):
        old.append(per_encode_us(old_build_request, args.n))
        new.append(per_encode_us(new_build_request, args.n))
    ratios = [o / n for o, n in zip(old, new, strict=True)]
    print(f"{args.n:,} encodes x {args.repeat} repetitions, {len(body)}-byte body, CPU time")
    for name, times in (("old (xmltodict.unparse)", old), ("new (template)", new)):
        print(f"{name:24} median {statistics.median(times):6.2f} us/encode  "
              f"(min {min(times):.2f}, max {max(times):.2f}; "
              + ", ".join(f"{t:.2f}" for t in times) + ")")
    print(f"{'ratio old/new':24} median {statistics.median(ratios):6.1f}x  "
          f"(min {min(ratios):.1f}x, max {max(ratios):.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

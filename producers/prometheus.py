"""``/metrics`` in Prometheus text format, from the pool-wide overview (design.md section 5)."""

from __future__ import annotations

from typing import Any

_BUCKETS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
            "30.0", "+Inf")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(view: dict[str, Any]) -> str:
    counters: dict[str, float] = view["counters"]
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    tenant_outcomes = []
    for key, value in counters.items():
        if key.startswith("tenant:"):
            tenant, _, outcome = key.removeprefix("tenant:").rpartition(":")
            tenant_outcomes.append((f'{{tenant="{_label(tenant)}",outcome="{outcome}"}}', value))
    metric("relay_outcomes_total", "counter", "Delivery attempts by outcome and tenant.",
           sorted(tenant_outcomes))
    metric("relay_signals_total", "counter", "Attempts by signal (return code or error).",
           sorted((f'{{signal="{_label(k.removeprefix("signal:"))}"}}', v)
                  for k, v in counters.items() if k.startswith("signal:")))
    metric("relay_ambiguous_total", "counter",
           "Attempts that may have been recorded remotely without a reply (timeouts, resets).",
           [("", counters.get("ambiguous", 0))])
    metric("relay_circuit_openings_total", "counter", "Circuit incidents opened, by tenant.",
           sorted((f'{{tenant="{_label(k.removeprefix("circuit_opened:"))}"}}', v)
                  for k, v in counters.items() if k.startswith("circuit_opened:")))
    metric("relay_circuit_open", "gauge", "1 while a tenant's circuit is open or half-open.",
           [(f'{{tenant="{_label(c["tenant"])}"}}', 1) for c in view["circuits"]])
    metric("relay_queue_depth", "gauge", "Events due now, waiting for a worker.",
           [("", view["due_now"])])
    metric("relay_held", "gauge", "Events leased by workers (calls in flight or starting).",
           [("", view["held"])])
    metric("relay_retry_scheduled", "gauge", "Events waiting for a later due time (retries).",
           [("", view["scheduled"])])
    metric("relay_parked", "gauge", "Events waiting for their tenant's circuit to close.",
           [("", view["parked"])])
    metric("relay_dead_letters_dropped_total", "counter",
           "Dead letters dropped past RELAY_DLQ_MAX or RELAY_DLQ_MAX_AGE (off by default).",
           [("", counters.get("dead_letters_dropped", 0)
             + counters.get("dead_letters_expired", 0))])
    if view.get("dead_letter_cap"):
        metric("relay_dead_letters_cap", "gauge", "RELAY_DLQ_MAX: the dead-letter store's cap.",
               [("", view["dead_letter_cap"])])
    metric("relay_stale_outcomes_total", "counter",
           "Late outcomes ignored because another worker held the event (possible duplicates).",
           [("", counters.get("stale", 0))])
    metric("relay_dead_letters", "gauge", "Events in the dead-letter store.",
           [("", view["dead_letters"])])
    cumulative, buckets = 0.0, []
    for bound in _BUCKETS:
        cumulative += counters.get(f"latency_le:{bound}", 0)
        buckets.append((f'_bucket{{le="{bound}"}}', cumulative))
    lines.append("# HELP relay_soap_latency_seconds RecordInteraction call latency.")
    lines.append("# TYPE relay_soap_latency_seconds histogram")
    lines.extend(f"relay_soap_latency_seconds{labels} {value:g}" for labels, value in buckets)
    lines.append(f"relay_soap_latency_seconds_sum {counters.get('latency_sum', 0):g}")
    lines.append(f"relay_soap_latency_seconds_count {cumulative:g}")
    return "\n".join(lines) + "\n"

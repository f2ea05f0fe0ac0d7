"""The metadata service's own metrics (the RPC and store metrics are modelreg_common's).

docs/observability.md lists them with the alerts built on them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

EVENTS_RELAYED = Counter("modelreg_events_relayed", "Events the relay placed in the trail (audit/outbox.py)")
EVENT_RELAY_PENDING = Gauge(
    "modelreg_event_relay_pending",
    "Changes committed by this process whose event is not in the trail yet (watchers wait for them)",
)
EVENT_RELAY_LAG = Gauge(
    "modelreg_event_relay_lag_seconds",
    "Age of the oldest change committed by this process whose event is not in the trail yet (0: none)",
)

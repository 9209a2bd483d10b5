"""Prometheus metrics, served at ``/metrics``. Every metric goapp exports is declared here,
so that the list is in one place."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    exposition,
    generate_latest,
)

REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets in seconds, from sub-millisecond (the rules core) to seconds (the database
# under load): a move's budget is a few milliseconds.
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

WS_CONNECTIONS = Gauge("goapp_ws_connections", "Open WebSocket connections.", registry=REGISTRY)
WS_MESSAGES = Counter(
    "goapp_ws_messages_total", "WebSocket messages received, by type.", ["type"], registry=REGISTRY
)
WS_DROPPED = Counter(
    "goapp_ws_dropped_total",
    "WebSocket connections closed by the server, by reason.",
    ["reason"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "goapp_http_requests_total",
    "HTTP requests, by route and status.",
    ["route", "status"],
    registry=REGISTRY,
)
ACTION_LATENCY = Histogram(
    "goapp_action_seconds",
    "Time from receiving a game action to its acknowledgement (commit included).",
    ["via"],
    buckets=_FAST,
    registry=REGISTRY,
)
BROADCAST_DURATION = Histogram(
    "goapp_broadcast_seconds",
    "Time to hand one committed event to every subscribed connection (the game loop).",
    buckets=_FAST,
    registry=REGISTRY,
)
DB_QUERY_SECONDS = Histogram(
    "goapp_db_query_seconds",
    "Time of store calls made by request handlers, by operation.",
    ["op"],
    buckets=_FAST,
    registry=REGISTRY,
)
ERRORS = Counter(
    "goapp_errors_total", "Errors answered to clients, by code.", ["code"], registry=REGISTRY
)

# Engine (KataGo / GNU Go / remote): queries take from milliseconds to minutes (a review).
_SLOW = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 600.0)
ENGINE_QUEUE_DEPTH = Gauge(
    "goapp_engine_queue_depth",
    "Engine queries waiting to be sent to the engine.",
    registry=REGISTRY,
)
ENGINE_QUERY_SECONDS = Histogram(
    "goapp_engine_query_seconds",
    "Time from submitting an engine query to its answer (queue wait included), by priority "
    "(bot, score, review).",
    ["priority"],
    buckets=_SLOW,
    registry=REGISTRY,
)
ENGINE_VISITS_PER_SECOND = Gauge(
    "goapp_engine_visits_per_second",
    "KataGo search speed of the last answered query (visits per second).",
    registry=REGISTRY,
)
ENGINE_RESTARTS = Counter(
    "goapp_engine_restarts_total",
    "Engine process restarts (after a crash or a hang).",
    registry=REGISTRY,
)
ENGINE_UP = Gauge(
    "goapp_engine_up",
    "1 when the engine answers queries, 0 when it is starting, degraded or absent.",
    registry=REGISTRY,
)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(REGISTRY), exposition.CONTENT_TYPE_LATEST


# The bus between instances (goapp.bus.redis; absent with one instance).
BUS_UP = Gauge(
    "goapp_bus_up",
    "1 while the Redis bus is connected and subscribed, 0 while it is degraded.",
    registry=REGISTRY,
)
BUS_MESSAGES = Counter(
    "goapp_bus_messages_total",
    "Messages published to or received from the Redis bus, by direction.",
    ["direction"],
    registry=REGISTRY,
)
BUS_GAP_FILLS = Counter(
    "goapp_bus_gap_fills_total",
    "Times a watched game's events were read from the log because the bus skipped some "
    "(a lost message, a reconnect).",
    registry=REGISTRY,
)
BUS_ERRORS = Counter(
    "goapp_bus_errors_total",
    "Redis errors of the bus (each one marks it degraded until it reconnects).",
    registry=REGISTRY,
)
BUS_DROPPED = Counter(
    "goapp_bus_dropped_total",
    "Bus messages dropped because the outbox was full while Redis was down.",
    registry=REGISTRY,
)

"""Client channels with the same limits and keepalive everywhere, and token-bearing calls."""

from __future__ import annotations

import grpc

from xenmca.rpc.server import MAX_MESSAGE_BYTES

CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Detect a vanished peer (killed host, cut link) on idle streams within seconds.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after a restart; the callers have their own backoff.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # Also the least time one connection attempt may take (see below): 100 ms was too
    # short on a loaded 2-core machine (64 pCPUs connecting at once in one process, or a
    # coordinator opening thousands of links), failing fresh channels as UNAVAILABLE
    # "connection attempt timed out before receiving SETTINGS frame". A refused connect
    # still fails at once, so a restarted peer is found as quickly as before.
    ("grpc.min_reconnect_backoff_ms", 1_000),
    # Nothing here serves channelz; its per-call accounting costs about 5 % of a unary
    # call's client CPU, and its per-channel trace memory adds up over thousands of pCPU links.
    ("grpc.enable_channelz", 0),
)


# gRPC core also takes grpc.min_reconnect_backoff_ms as the least time one connection
# attempt may take (TCP connect plus handshake): a TLS handshake on a busy machine can
# take longer than a plaintext one and then fails as UNAVAILABLE "Handshake read failed
# (Endpoint closing)". TLS channels give an attempt this long instead.
TLS_MIN_CONNECT_TIMEOUT_MS = 2_000


def tls_channel_options(options: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    """options with the minimum connect timeout raised for a TLS handshake."""
    key = "grpc.min_reconnect_backoff_ms"
    kept = tuple(option for option in options if option[0] != key)
    current = max((value for name, value in options if name == key), default=0)
    return (*kept, (key, max(current, TLS_MIN_CONNECT_TIMEOUT_MS)))


def with_keepalive(
    options: tuple[tuple[str, int], ...], keepalive_ms: int
) -> tuple[tuple[str, int], ...]:
    """options with another keepalive ping interval (grpc.keepalive_time_ms)."""
    key = "grpc.keepalive_time_ms"
    return (*(option for option in options if option[0] != key), (key, keepalive_ms))


def open_channel(
    address: str,
    credentials: grpc.ChannelCredentials | None = None,
    *,
    keepalive_ms: int | None = None,
) -> grpc.aio.Channel:
    """An aio channel to address (plaintext unless credentials are given).

    ``keepalive_ms`` replaces the keepalive ping interval, for channels that are
    many and long-lived (the coordinator's links to thousands of pCPUs).
    """
    options = (
        CHANNEL_OPTIONS if keepalive_ms is None else with_keepalive(CHANNEL_OPTIONS, keepalive_ms)
    )
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=tls_channel_options(options))

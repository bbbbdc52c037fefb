"""HTTP endpoint for /metrics on the configured address (127.0.0.1 by default)."""

from __future__ import annotations

import logging
from typing import Protocol

from prometheus_client import start_http_server

from streamer.config import Settings
from streamer.errors import ConfigError
from streamer.metrics import Metrics

log = logging.getLogger(__name__)


class Stoppable(Protocol):
    def shutdown(self) -> None: ...


def start_metrics_server(metrics: Metrics, settings: Settings) -> Stoppable | None:
    """Serve metrics in a background thread; None when the port is 0 (disabled)."""
    if settings.metrics_port == 0:
        return None
    try:
        server, _thread = start_http_server(
            settings.metrics_port, addr=settings.metrics_host, registry=metrics.registry
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
            f"{exc.strerror}",
            hint="choose another --metrics-port (0 disables the endpoint)",
        ) from None
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return server

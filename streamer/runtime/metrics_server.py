"""HTTP endpoint on the metrics port: /metrics, /healthz (the main loop turns) and /readyz
(both databases connected and the stream running). Binds 127.0.0.1 by default."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamer.config import Settings
from streamer.errors import ConfigError
from streamer.runtime.health import RunState
from streamer.runtime.metrics import Metrics

log = logging.getLogger(__name__)


def _handler(metrics: Metrics, state: RunState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = state.alive()
                self._send(200 if ok else 503, b"ok\n" if ok else b"main loop stalled\n")
            elif path == "/readyz":
                ok = state.ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
            return

    return Handler


class MetricsServer:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever, name="streamer-http", daemon=True
        )
        self._thread.start()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics_server(
    metrics: Metrics, settings: Settings, state: RunState | None = None
) -> MetricsServer | None:
    """Serve in a background thread; None when the port is 0 (disabled)."""
    if settings.metrics_port == 0:
        return None
    try:
        server = ThreadingHTTPServer(
            (settings.metrics_host, settings.metrics_port),
            _handler(metrics, state or RunState()),
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
            f"{exc.strerror}",
            hint="choose another --metrics-port (0 disables the endpoint)",
        ) from None
    server.daemon_threads = True
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return MetricsServer(server)

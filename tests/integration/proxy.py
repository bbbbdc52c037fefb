"""A small TCP proxy on 127.0.0.1 for network-fault tests: forward, reset every
connection, or blackhole (keep sockets open, silently drop all bytes)."""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class FaultyProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])
        self.mode = "forward"  # forward | blackhole
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([a, b], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        if self.mode == "blackhole":
                            # a half-open link: the client never learns the peer is gone
                            self._closed.wait()
                        return
                    if self.mode == "forward":
                        peers[sock].sendall(data)
                    # blackhole: swallow the bytes, keep both sockets open
        except (OSError, ValueError):  # ValueError: reset_all closed a socket meanwhile
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()

    def reset_all(self) -> None:
        """Abort every open connection with a TCP RST."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    sock.close()

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        self.reset_all()

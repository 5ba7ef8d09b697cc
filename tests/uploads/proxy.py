"""A TCP proxy for the upload tests that drops the connection once after N client bytes.

Threads and sockets only: each accepted connection gets an upstream one and two pumps. When
the bytes sent towards the API (over every connection) pass `drop_after`, the connection that
carried them is closed on both sides, once; everything after passes untouched. delay_s
slows the client -> API direction down.
"""

from __future__ import annotations

import socket
import threading
import time


class DroppingProxy:
    def __init__(
        self, upstream: tuple[str, int], drop_after: int | None, delay_s: float = 0.0
    ) -> None:
        self.upstream = upstream
        self.drop_after = drop_after
        self.delay_s = delay_s  # a pause per 64 KiB read from the client: a slow link
        self.sent = 0  # client -> API bytes, all connections
        self.dropped = 0
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop = True
        self._srv.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._srv.accept()
            except OSError:
                return
            up = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_api: bool) -> None:
        try:
            while data := src.recv(65536):
                if to_api:
                    time.sleep(self.delay_s)
                    with self._lock:
                        self.sent += len(data)
                        cut = (
                            self.drop_after is not None
                            and not self.dropped
                            and self.sent > self.drop_after
                        )
                        if cut:
                            self.dropped += 1
                    if cut:
                        keep = len(data) - (self.sent - self.drop_after)
                        dst.sendall(data[:keep])
                        break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

"""A real HTTP server on 127.0.0.1 for download tests: honours Range, can cut or stall replies."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    """What the server serves and how: files by URL path, cuts, delay, Range support."""

    files: dict[str, bytes] = field(default_factory=dict)
    cuts: list[int] = field(default_factory=list)  # bytes sent by the next replies before a cut
    delay: float = 0.0  # seconds to stall before answering
    ranges: bool = True  # honour Range headers (else always send the whole file with 200)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        how = self.server.behaviour
        how.requests.append((self.path, self.headers.get("Range")))
        if how.delay:
            time.sleep(how.delay)
        data = how.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start, match = 0, re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and how.ranges:
            start = int(match[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if how.cuts:
            body = body[: how.cuts.pop(0)]
            self.close_connection = True
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    behaviour: Behaviour


@contextmanager
def serve(behaviour: Behaviour) -> Iterator[str]:
    """Run the server in a thread; yield its base URL ``http://127.0.0.1:PORT``."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.behaviour = behaviour
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()

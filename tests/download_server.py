"""A small HTTP file server on 127.0.0.1 for the model-download tests: ranges, a published SHA-256, and
faults on demand (drop the connection mid-file, ignore ranges, answer an error, go slowly)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Faults:
    drop_after: int | None = None
    """Close the connection after this many body bytes, on the next ``drops`` GETs."""
    drops: int = 0
    ignore_range: bool = False
    status: int | None = None
    """Answer every GET with this status instead of the file."""
    publish_sha: bool = True
    redirect: bool = False
    """Answer at /<path> with a 302 to /cdn/<path> (the hub's way), the checksum on the 302."""
    chunk_delay_s: float = 0.0


@dataclass
class FileServer:
    files: dict[str, bytes]
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Range header) of every request, in order."""

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

            def _lookup(self) -> tuple[str, bytes | None, bool]:
                path = self.path.lstrip("/")
                via_cdn = path.startswith("cdn/")
                key = path.removeprefix("cdn/")
                return key, server.files.get(key), via_cdn

            def _checksum_headers(self, body: bytes) -> None:
                if server.faults.publish_sha:
                    self.send_header("X-Linked-Etag", f'"{hashlib.sha256(body).hexdigest()}"')

            def do_HEAD(self) -> None:
                server.requests.append(("HEAD", self.path, self.headers.get("Range")))
                key, body, via_cdn = self._lookup()
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(302 if server.faults.redirect and not via_cdn else 200)
                if server.faults.redirect and not via_cdn:
                    self.send_header("Location", f"/cdn/{key}")
                self._checksum_headers(body)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()

            def do_GET(self) -> None:
                faults = server.faults
                server.requests.append(("GET", self.path, self.headers.get("Range")))
                key, body, via_cdn = self._lookup()
                if faults.status is not None:
                    self.send_response(faults.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if faults.redirect and not via_cdn:
                    self.send_response(302)
                    self.send_header("Location", f"/cdn/{key}")
                    self._checksum_headers(body)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and not faults.ignore_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if faults.drop_after is not None and faults.drops > 0:
                    faults.drops -= 1
                    self.wfile.write(payload[: faults.drop_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                step = 4096
                for offset in range(0, len(payload), step):
                    if faults.chunk_delay_s:
                        threading.Event().wait(faults.chunk_delay_s)
                    try:
                        self.wfile.write(payload[offset : offset + step])
                    except (BrokenPipeError, ConnectionResetError):
                        return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

"""A real HTTP server on 127.0.0.1 with Range support, and builders of fixture archives."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Seen:
    path: str
    range: str | None


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> body
    redirects: dict[str, str] = field(default_factory=dict)  # URL path -> URL path
    errors: dict[str, list[int]] = field(default_factory=dict)  # statuses to answer first, one per request
    drop_once: dict[str, int] = field(default_factory=dict)  # close the connection after this many body bytes
    ignore_range: set[str] = field(default_factory=set)
    requests: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        state: ServerState = self.server.state
        path = urlsplit(self.path).path
        state.requests.append(Seen(path, self.headers.get("Range")))
        if path in state.redirects:
            return self._answer(302, b"", {"Location": state.redirects[path]})
        if state.errors.get(path):
            return self._answer(state.errors[path].pop(0), b"error")
        if path not in state.files:
            return self._answer(404, b"not found")
        data, start = state.files[path], 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and path not in state.ignore_range:
            start = int(match[1])
            if start >= len(data):
                return self._answer(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
            return self._answer(206, data[start:], headers, path)
        return self._answer(200, data, {}, path)

    def _answer(self, status: int, body: bytes, headers: dict | None = None, path: str | None = None) -> None:
        self.send_response(status)
        for key, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        cut = self.server.state.drop_once.pop(path, None)
        if cut is not None:  # a connection lost mid-body: part of the bytes, then the socket closes
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


class FileServer:
    def __init__(self) -> None:
        self.state = ServerState()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.state = self.state
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def serve(self, path: str, data: bytes) -> str:
        self.state.files[path] = data
        return self.base + path

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def requests(self) -> list[Seen]:
        return self.state.requests

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def payload(n: int, seed: int = 0) -> bytes:
    """n deterministic, incompressible-looking bytes."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def tar_bytes(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tree(root: Path) -> dict[str, bytes | str]:
    """Every path under root -> its bytes ('<dir>' for folders, '-> target' for links): a snapshot to compare."""
    if not root.exists():
        return {}
    snap: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            snap[rel] = f"-> {path.readlink()}"
        elif path.is_dir():
            snap[rel] = "<dir>"
        else:
            snap[rel] = path.read_bytes()
    return snap

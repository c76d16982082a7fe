"""The control surface's HTTP server, in a process of its own (`python -m timbrel.ui.web FD`).

Everything a browser causes happens here: parsing HTTP and JSON, checking access
(`timbrel.ui.access`), serving `static/`, listing and searching presets, favourites, and the
FFT of the output. The engine process only sees short, validated commands on the
connection inherited as file descriptor FD, and few of them: `timbrel.ui.relay` shares reads
between clients and coalesces parameter changes. The process runs at a lower CPU priority
than the engine (`NICENESS`) and exits when the engine process closes the connection (or dies).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from timbrel.engine.errors import TimbrelError
from timbrel.presets.library import CATEGORIES, Library
from timbrel.presets.names import check_name, fold
from timbrel.presets.search import matching
from timbrel.ui.access import Access
from timbrel.ui.bridge import RequestError, finite_number, text
from timbrel.ui.favourites import Favourites
from timbrel.ui.relay import SLOW_TIMEOUT_S, EngineLink, Relay
from timbrel.ui.spectrum import Spectrum

MAX_BODY_BYTES = 64 * 1024
NICENESS = 10
"""Added to this process's nice value: where audio runs without real-time scheduling, the
control surface yields the CPU to it."""
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


class Surface:
    """The routes: each takes the query (dict of lists) and the JSON body, returns a JSON-ready value."""

    def __init__(self, relay: Relay, access: Access, factory_dir: str, user_dir: str):
        self.relay = relay
        self.access = access
        self.library = Library(factory_dir, user_dir)
        self.favourites = Favourites(Path(user_dir) / "favourites.json")
        self.static = {route: (STATIC_DIR / name).read_bytes() for route, name in STATIC_FILES.items()}
        self._spectrum_lock = threading.Lock()
        self._spectrum: tuple[object, dict] = (None, {})
        self._analysers: dict[int, Spectrum] = {}
        call = relay.call
        self.routes: dict[tuple[str, str], Callable[[dict, dict], object]] = {
            ("GET", "/api/status"): lambda q, b: relay.status(),
            ("GET", "/api/describe"): lambda q, b: relay.describe(),
            ("GET", "/api/spectrum"): lambda q, b: self.spectrum(),
            ("GET", "/api/live"): lambda q, b: {"status": relay.status(), "spectrum": self.spectrum()},
            ("GET", "/api/presets"): self.presets,
            ("GET", "/api/devices"): lambda q, b: call("devices", timeout=SLOW_TIMEOUT_S),
            ("POST", "/api/load"): lambda q, b: call("load", {"name": self.preset(b.get("name")).name}),
            ("POST", "/api/audition"): lambda q, b: call(
                "audition", {"name": self.preset(b.get("name")).name}, SLOW_TIMEOUT_S),
            ("POST", "/api/parameter"): self.parameter,
            ("POST", "/api/bypass"): lambda q, b: call("bypass", b),
            ("POST", "/api/note"): lambda q, b: call("note", b),
            ("POST", "/api/heartbeat"): lambda q, b: call("heartbeat"),
            ("POST", "/api/panic"): lambda q, b: call("panic"),
            ("POST", "/api/mode"): lambda q, b: call("mode", b, SLOW_TIMEOUT_S),
            ("POST", "/api/part"): lambda q, b: call(
                "part", {"part": b.get("part"), "preset": self.preset(b.get("preset")).name}, SLOW_TIMEOUT_S),
            ("POST", "/api/save"): self.save,
            ("POST", "/api/favourite"): self.favourite,
            ("POST", "/api/devices"): lambda q, b: call("set_devices", b, SLOW_TIMEOUT_S),
        }

    def preset(self, name: object):
        """The library's preset called `name` (never a file path); RequestError 404 when none."""
        name = text(name, "the preset name")
        if "/" in name or "\\" in name or Path(name).suffix.lower() in (".toml", ".onnx"):
            raise RequestError(400, f"{name!r}: give a preset's name, not a file")
        try:
            return self.library.get(name)
        except TimbrelError as err:
            raise RequestError(404, str(err)) from None

    def presets(self, query: dict, _body: dict) -> dict:
        """Presets matching `q` (search words), `category`, `tag` and `favourites=1`, best first."""
        words = query.get("q", [""])[0].strip()
        category = query.get("category", [""])[0] or None
        tag = query.get("tag", [""])[0] or None
        if category is not None and category not in CATEGORIES:
            raise RequestError(400, f"no category {category!r} (categories: {', '.join(CATEGORIES)})")
        everything = self.library.list()
        found = self.library.search(words) if words else everything
        favourites = self.favourites.names()
        found = matching(found, category, tag)
        if query.get("favourites", ["0"])[0] == "1":
            found = [p for p in found if p.name in favourites]
        return {
            "presets": [{"name": p.name, "category": p.category, "tags": list(p.tags), "description": p.description,
                         "mode": p.mode, "factory": p.factory, "favourite": p.name in favourites} for p in found],
            "categories": [c for c in CATEGORIES if any(p.category == c for p in everything)],
            "tags": sorted({t for p in everything for t in p.tags}, key=str.casefold),
            "problem": self.favourites.problem,
        }

    def parameter(self, _query: dict, body: dict) -> dict:
        """`{"id": "gain_db" or "eq.peak1_db", "value": number}`: checked, queued, answered at once."""
        parameter_id = text(body.get("id"), "the parameter id")
        return self.relay.set_parameter(parameter_id, finite_number(body.get("value"), f"the value of {parameter_id}"))

    def save(self, _query: dict, body: dict) -> object:
        """Save the current sound as user preset `name`; 409 when it exists and `force` is not true."""
        name = check_name(body.get("name"))
        force = body.get("force", False)
        if force is not True and any(fold(p.name) == fold(name) and not p.factory for p in self.library.list()):
            raise RequestError(409, f"user preset {name!r} already exists; save again with force to replace it")
        return self.relay.call("save", {"name": name, "force": force is True}, SLOW_TIMEOUT_S)

    def favourite(self, _query: dict, body: dict) -> dict:
        """Star (`favourite` true) or unstar preset `name`; returns every favourite."""
        favourite = body.get("favourite", True)
        if not isinstance(favourite, bool):
            raise RequestError(400, f"favourite must be true or false, not {favourite!r}")
        name = self.preset(body.get("name")).name
        return {"favourites": sorted(self.favourites.mark(name, favourite))}

    def spectrum(self) -> dict:
        """Levels of the latest 2048 output samples in log-spaced bands (see `timbrel.ui.spectrum`)."""
        scope = self.relay.scope()
        with self._spectrum_lock:
            if self._spectrum[0] is scope:
                return self._spectrum[1]
            rate = scope["sample_rate"]
            analyser = self._analysers.get(rate) or self._analysers.setdefault(rate, Spectrum(rate))
            levels = analyser(np.frombuffer(scope["samples"], dtype=np.float32))
            result = {"sample_rate": rate, "bands_hz": np.round(analyser.centres_hz, 1).tolist(),
                      "level_db": np.round(levels, 1).tolist()}
            self._spectrum = (scope, result)
            return result


class Handler(BaseHTTPRequestHandler):
    """One request: access check, then a static file or an API route; errors as JSON `{"error": line}`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "timbrel"
    sys_version = ""
    timeout = 30
    server: SurfaceServer

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        surface = self.server.surface
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        cookie = None
        try:
            raw = self._read_body(method)
            verdict = surface.access.check(method, query, self.headers)
            if verdict.status:
                raise RequestError(verdict.status, verdict.message)
            body = self._parse_body(raw)
            cookie = surface.access.cookie_header() if verdict.set_cookie else None
            if method in ("GET", "HEAD") and url.path in surface.static:
                if cookie is not None:
                    return self._send(303, b"", "text/plain", {"Location": url.path, "Set-Cookie": cookie})
                content_type = CONTENT_TYPES[Path(STATIC_FILES[url.path]).suffix]
                return self._send(200, surface.static[url.path], content_type, head=method == "HEAD")
            route = surface.routes.get(("GET" if method == "HEAD" else method, url.path))
            if route is None:
                known = any(path == url.path for _, path in surface.routes)
                raise RequestError(405 if known else 404,
                                   f"{method} {url.path}: {'not allowed here' if known else 'no such endpoint'}")
            result = route(query, body)
            payload = json.dumps(result, allow_nan=False, separators=(",", ":")).encode()
            self._send(200, payload, "application/json", {"Set-Cookie": cookie} if cookie else None, method == "HEAD")
        except RequestError as err:
            self._error(err.status, str(err), cookie)
        except TimbrelError as err:
            self._error(400, str(err), cookie)
        except Exception as err:  # a fault of ours: one line to the client, and keep serving
            self._error(500, f"{type(err).__name__}: {err}", cookie)

    def _read_body(self, method: str) -> bytes | None:
        """The bytes sent with a POST, PUT or PATCH (None for other methods)."""
        length_header = self.headers.get("Content-Length")
        if method not in ("POST", "PUT", "PATCH"):
            if length_header:
                self.close_connection = True
            return None
        if length_header is None:
            self.close_connection = True
            raise RequestError(411, "a request body needs a Content-Length")
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise RequestError(400, f"bad Content-Length {length_header!r}") from None
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(413, f"a request body may hold at most {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _parse_body(self, raw: bytes | None) -> dict:
        """The JSON object in `raw` (`{}` when there is no body)."""
        if raw is None:
            return {}
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise RequestError(415, "send the request body as application/json")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise RequestError(400, f"bad JSON: {err}") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the request body must be a JSON object")
        return body

    def _error(self, status: int, message: str, cookie: str | None) -> None:
        line = " ".join(message.split()) or HTTPStatus(status).phrase
        headers = {"Set-Cookie": cookie} if cookie else {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="timbrel"'
        self._send(status, json.dumps({"error": line}).encode(), "application/json", headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict | None = None,
              head: bool = False) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(payload)
        except (ConnectionError, TimeoutError):
            self.close_connection = True


class SurfaceServer(ThreadingHTTPServer):
    """A thread per connection; `surface` holds the routes (set once the port is bound)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, host: str, port: int, surface: Surface | None = None):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.surface = surface
        super().__init__((host.strip("[]"), port), Handler)

    def handle_error(self, request, client_address) -> None:
        """A client that went away is no fault; anything else is reported in one line."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            print(f"timbrel control surface: {type(error).__name__}: {error}", file=sys.stderr)


def main(argv: list[str]) -> int:
    """Serve on the address the engine process sends first: `{"host", "port", "token", "factory_dir", "user_dir"}`."""
    os.nice(NICENESS)
    connection = Connection(int(argv[0]))
    config = connection.recv()
    try:
        server = SurfaceServer(config["host"], config["port"])
    except OSError as err:
        where = f"{config['host']}:{config['port']}"
        message = f"cannot open the control surface on {where}: {err.strerror or err}; pick another --port or --host"
        connection.send(("failed", message))
        return 1
    port = server.server_address[1]
    link = EngineLink(connection)
    try:
        server.surface = Surface(Relay(link), Access(config["host"], port, config["token"]), config["factory_dir"],
                                 config["user_dir"])
    except Exception as err:
        connection.send(("failed", f"the control surface cannot start: {type(err).__name__}: {err}"))
        return 1
    connection.send(("ready", port))
    link.start()
    server.serve_forever(poll_interval=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

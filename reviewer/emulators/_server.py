"""Shared plumbing for the local API emulators: a threaded HTTP/1.1 server on 127.0.0.1, a request log,
and fault switches (answer the next matching request with an error; hold a response after the request
was processed, so that a test can kill the client between the server's side effect and its answer).

The emulators exist for the demo and the tests; no pipeline module imports them.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

HOLD_TIMEOUT_SECONDS = 30.0

log = logging.getLogger("reviewer.emulators")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    headers: dict[str, str]


@dataclass
class _Switch:
    """A one-shot (or `times`-shot) switch for requests whose method is `method` and path matches."""

    method: str
    pattern: re.Pattern[str]
    times: int

    def matches(self, method: str, path: str) -> bool:
        return self.method == method and self.pattern.search(path) is not None


@dataclass
class Fault(_Switch):
    status: int
    body: Any
    headers: dict[str, str]

    def response(self) -> Response:
        """`body` as JSON (default `{"message": "emulated fault"}`), or, given as bytes, sent as it is (an
        HTML error page, an empty body), as text/html unless `headers` name another Content-Type."""
        if isinstance(self.body, bytes):
            return Response(self.status, self.body, {"Content-Type": "text/html; charset=utf-8", **self.headers})
        payload = self.body if self.body is not None else {"message": "emulated fault"}
        return Response.json(self.status, payload, self.headers)


@dataclass
class Loss(_Switch):
    """Processes a matching request (its side effect happens), then loses the answer: `status` None
    drops the connection without a word, else the client gets that status instead of the real answer."""

    status: int | None


@dataclass
class Cut(_Switch):
    """Processes a matching request and starts its real answer (status, headers, the full Content-Length),
    then drops the connection after `fraction` of the body: a download that breaks off mid-stream."""

    fraction: float


@dataclass
class Hold(_Switch):
    """Blocks the response of one matching request after it was processed, until released."""

    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


S = TypeVar("S", bound=_Switch)


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a killed process, a timeout under test) is routine here: it is
    logged at debug level instead of a traceback on stderr, which the tests read."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator: the connection from %s ended badly", client_address, exc_info=True)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), all_headers)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


Handler = Callable[[Request], Response]


class EmulatorServer:
    """Runs `handle(request) -> Response` behind a ThreadingHTTPServer in a daemon thread."""

    def __init__(self, handle: Handler, public_url: str | None = None, port: int = 0) -> None:
        self._handle = handle
        self._public_url = public_url
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []
        self._losses: list[Loss] = []
        self._cuts: list[Cut] = []
        self.requests: list[RecordedRequest] = []

    @property
    def url(self) -> str:
        if self._public_url:
            return self._public_url.rstrip("/")
        if self._httpd is None:
            raise RuntimeError("emulator is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> None:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs cost ~40 ms per keep-alive request

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                server._serve_one(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        self._httpd = _QuietServer(("127.0.0.1", self._port), _Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            for hold in self._holds:
                hold.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # fault switches -------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_pattern: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        with self._lock:
            self._faults.append(
                Fault(method.upper(), re.compile(path_pattern), times, status, body, dict(headers or {}))
            )

    def lose_answer(self, method: str, path_pattern: str, status: int | None = None, times: int = 1) -> None:
        """The next `times` matching requests are carried out, and their answers lost (see `Loss`)."""
        with self._lock:
            self._losses.append(Loss(method.upper(), re.compile(path_pattern), times, status))

    def cut_answer(self, method: str, path_pattern: str, fraction: float = 0.5, times: int = 1) -> None:
        """The next `times` matching answers break off after `fraction` of their body (see `Cut`)."""
        with self._lock:
            self._cuts.append(Cut(method.upper(), re.compile(path_pattern), times, fraction))

    def hold_after_processing(self, method: str, path_pattern: str) -> Hold:
        hold = Hold(method.upper(), re.compile(path_pattern), 1)
        with self._lock:
            self._holds.append(hold)
        return hold

    def count(self, method: str | None = None, path_prefix: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path_prefix is None or r.path.startswith(path_prefix))
            )

    # serving ----------------------------------------------------------------------------------------

    def _take(self, switches: list[S], method: str, path: str) -> S | None:
        """The first switch that matches, used up once (and removed when it has no uses left)."""
        with self._lock:
            for switch in switches:
                if switch.matches(method, path):
                    switch.times -= 1
                    if switch.times <= 0:
                        switches.remove(switch)
                    return switch
        return None

    def _serve_one(self, raw: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(raw.path)
        length = int(raw.headers.get("Content-Length") or 0)
        body = raw.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in raw.headers.items()}
        request = Request(raw.command, parts.path, parse_qs(parts.query), headers, body)
        fault = self._take(self._faults, request.method, request.path)
        if fault is not None:
            response = fault.response()
        else:
            response = self._handle(request)
            hold = self._take(self._holds, request.method, request.path)
            if hold is not None:
                hold.reached.set()
                hold.released.wait(HOLD_TIMEOUT_SECONDS)
            loss = self._take(self._losses, request.method, request.path)
            if loss is not None and loss.status is None:
                with self._lock:
                    self.requests.append(RecordedRequest(request.method, request.path, request.query, 0, headers))
                raw.close_connection = True  # no status line at all: the client sees the connection drop
                return
            if loss is not None and loss.status is not None:
                response = Response.json(loss.status, {"type": "error", "error": {
                    "type": "api_error", "message": "Internal server error"}})
        with self._lock:
            self.requests.append(
                RecordedRequest(request.method, request.path, request.query, response.status, headers)
            )
        cut = self._take(self._cuts, request.method, request.path)
        self._write(raw, response, None if cut is None else int(len(response.body) * cut.fraction))

    @staticmethod
    def _write(raw: BaseHTTPRequestHandler, response: Response, cut_at: int | None = None) -> None:
        """Send `response`; with `cut_at`, only that many bytes of its body, then close the connection."""
        try:
            raw.send_response(response.status)
            for name, value in response.headers.items():
                raw.send_header(name, value)
            raw.send_header("Content-Length", str(len(response.body)))
            raw.end_headers()
            if raw.command != "HEAD":
                raw.wfile.write(response.body if cut_at is None else response.body[:cut_at])
            if cut_at is not None:
                raw.wfile.flush()
                raw.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (killed by a crash test) while the response was held

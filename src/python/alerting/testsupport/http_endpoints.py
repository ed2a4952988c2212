"""Real HTTP servers on loopback for tests of outbound requests: each path answers from a
script (in order, the last answer repeated), and every request is kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0  # before answering: a server that hangs


@dataclass(frozen=True)
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes


class Endpoints:
    def __init__(self, scripts: Mapping[str, Sequence[Answer]]) -> None:
        self.scripts = {path: list(answers) for path, answers in scripts.items()}
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def requests_to(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.received if request.path == path]

    def answer(self, path: str) -> Answer:
        with self.lock:
            script = self.scripts.get(path) or [Answer(404)]
            return script.pop(0) if len(script) > 1 else script[0]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints

            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with endpoints.lock:
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    endpoints.received.append(Received(self.path, headers, body))
                answer = endpoints.answer(self.path)
                time.sleep(answer.delay_seconds)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler


@contextmanager
def serving(scripts: Mapping[str, Sequence[Answer]]) -> Iterator[Endpoints]:
    endpoints = Endpoints(scripts)
    thread = threading.Thread(target=endpoints.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoints
    finally:
        endpoints.server.shutdown()
        endpoints.server.server_close()

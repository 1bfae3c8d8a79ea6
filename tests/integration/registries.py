"""Registries for the pull and push tests: Debian's reference registry, and HTTP fault stubs.

:class:`Registry` runs ``docker-registry serve`` (distribution 2.8) on
127.0.0.1 with a free port, a private storage folder and a configuration
written here (plain HTTP; optionally ``htpasswd`` Basic auth, or the
``silly`` Bearer challenge pointing at a token endpoint of the test); it is
stopped by its pid. :class:`Proxy` sits between the client and a registry
on another loopback port and injects faults (answers 503 a number of times,
flips a byte of a blob, counts requests). Nothing here talks to any address
but 127.0.0.1.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ci import missing

BINARY = "docker-registry"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_listening(port: int, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the registry exited: {log.read_text()[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after 20 s")


class Registry:
    """One ``docker-registry serve`` on 127.0.0.1 (a context manager; stopped by pid)."""

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        token_realm: str = "",
        redirect_to: str = "",
        tls: bool = False,
    ) -> None:
        if shutil.which(BINARY) is None:
            missing("docker-registry is not installed (apt-get install docker-registry)")
        self.folder = folder
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        auth = ""
        if users:
            if shutil.which("htpasswd") is None:
                missing("htpasswd is not installed (apt-get install apache2-utils)")
            lines = [
                subprocess.run(
                    ["htpasswd", "-Bbn", user, password],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                for user, password in users.items()
            ]
            (folder / "htpasswd").write_text("\n".join(lines) + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: lcdtest\n    path: {folder / 'htpasswd'}\n"
        elif token_realm:
            auth = f"auth:\n  silly:\n    realm: {token_realm}\n    service: lcdtest\n"
        config = (
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n  secret: lcdtest-{self.port}\n" + auth
        )
        self.ca: Path | None = None
        if tls:  # HTTPS with a leaf for IP:127.0.0.1 signed by a CA made here
            self.ca = make_certificates(folder)
            config += (
                f"  tls:\n    certificate: {folder / 'leaf.pem'}\n    key: {folder / 'leaf.key'}\n"
            )
        if redirect_to:  # blob GETs answered 307 to another origin (a static file server)
            config += (
                "middleware:\n  storage:\n    - name: redirect\n"
                f"      options:\n        baseurl: {redirect_to}\n"
            )
        (folder / "config.yml").write_text(config)
        self.log = folder / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Registry:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [BINARY, "serve", str(self.folder / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_listening(self.port, self.process, self.log)
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def hosts_dir(self, host: str | None = None, port: int | None = None) -> Path:
        """A certs.d folder for ``host`` (default: this registry's): plain HTTP, or HTTPS
        trusting the registry's CA."""
        host = host or self.host
        folder = self.folder / f"certs.d-{port or self.port}"
        (folder / host).mkdir(parents=True, exist_ok=True)
        if self.ca is not None:
            text = f'server = "https://127.0.0.1:{port or self.port}"\nca = "{self.ca}"\n'
        else:
            text = f'server = "http://127.0.0.1:{port or self.port}"\n'
        (folder / host / "hosts.toml").write_text(text)
        return folder


def make_certificates(folder: Path) -> Path:
    """A CA (``ca.pem``) and a leaf for IP 127.0.0.1 it signed (``leaf.pem``/``leaf.key``)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], capture_output=True, check=True, timeout=60)

    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=lcdtest CA",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
    )
    request = folder / "leaf.csr"
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(folder / "leaf.key"),
        "-out",
        str(request),
    )
    extensions = folder / "leaf.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(extensions),
        "-out",
        str(folder / "leaf.pem"),
    )
    return ca


@dataclass
class Faults:
    """What the proxy does to requests whose path contains ``match``."""

    match: str = ""
    unavailable: int = 0  # answer 503 this many times first
    corrupt: bool = False  # flip one byte of the answer's body
    stall: float = 0.0  # wait this long before answering
    reply: tuple[int, dict[str, str], bytes] | None = None  # answer this instead
    drop_after: int = 0  # the first matching GET: send this many bytes, then hang up
    stall_after: int = 0  # the first matching GET: send this many bytes, then stall
    stall_for: float = 60.0  # how long that stall lasts before the connection is closed
    seen: list[str] = field(default_factory=list)  # "METHOD path" of every request
    headers: list[dict[str, str]] = field(default_factory=list)


class Proxy:
    """A loopback HTTP proxy in front of a registry that injects :class:`Faults`."""

    def __init__(self, upstream_port: int, faults: Faults) -> None:
        self.upstream_port = upstream_port
        self.faults = faults
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def _any(self) -> None:
                proxy.handle(self)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        faults = self.faults
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        matched = faults.match in request.path
        with self._lock:
            faults.seen.append(f"{request.command} {request.path}")
            faults.headers.append(dict(request.headers.items()))
            unavailable = matched and faults.unavailable > 0
            if unavailable:
                faults.unavailable -= 1
        if unavailable:
            _answer(request, 503, {"Content-Type": "text/plain"}, b"try again later\n")
            return
        if matched and faults.stall:
            time.sleep(faults.stall)
        if matched and faults.reply is not None:
            status, headers, data = faults.reply
            _answer(request, status, headers, data, head=request.command == "HEAD")
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            headers["Host"] = f"127.0.0.1:{self.upstream_port}"
            upstream.request(request.command, request.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            # A HEAD's answer keeps the registry's length (the size of what a GET gives).
            dropped = ("transfer-encoding", "connection") + (
                () if request.command == "HEAD" else ("content-length",)
            )
            out = {k: v for k, v in answer.getheaders() if k.lower() not in dropped}
        finally:
            upstream.close()
        if matched and faults.corrupt and request.command == "GET" and len(data) > 100:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        drop = stall = 0
        if matched and request.command == "GET":
            with self._lock:
                drop, faults.drop_after = faults.drop_after, 0
                stall, faults.stall_after = faults.stall_after, 0
        if stall:
            drop = stall
        if drop:
            request.send_response(answer.status)
            for key, value in out.items():
                request.send_header(key, value)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data[:drop])
            request.wfile.flush()
            if stall:
                time.sleep(faults.stall_for)
            request.close_connection = True
            request.connection.shutdown(socket.SHUT_RDWR)
            return
        location = out.get("Location")
        if location:
            out["Location"] = location.replace(
                f"127.0.0.1:{self.upstream_port}", f"127.0.0.1:{self.port}"
            )
        _answer(request, answer.status, out, data, head=request.command == "HEAD")


class StaticFiles:
    """A loopback file server (a registry's blob storage) that records each request's headers."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, dict[str, str]]] = []
        files = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                files.requests.append((self.path, dict(self.headers.items())))
                super().do_GET()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StaticFiles:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


class TokenService:
    """A Bearer token endpoint on loopback: hands out ``token-<n>`` and records each request."""

    def __init__(self, answer: Callable[[int], tuple[int, dict[str, Any]]] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.forms: list[dict[str, str]] = []  # the bodies of POSTs (OAuth2 refresh tokens)
        self._answer = answer or (lambda n: (200, {"token": f"token-{n}", "expires_in": 300}))
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                service.requests.append((self.path, dict(self.headers.items())))
                status, document = service._answer(len(service.requests))
                _answer(
                    self,
                    status,
                    {"Content-Type": "application/json"},
                    json.dumps(document).encode(),
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                service.forms.append({key: values[0] for key, values in form.items()})
                self.do_GET()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TokenService:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


def _answer(
    request: http.server.BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str],
    body: bytes,
    *,
    head: bool = False,
) -> None:
    request.send_response(status)
    for key, value in headers.items():
        request.send_header(key, value)
    if not head or "Content-Length" not in headers:
        request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    if not head:
        request.wfile.write(body)

"""Real HTTP servers on 127.0.0.1 for tests: nginx for the normal path, and a fault-injecting server.

    with nginx(root) as url:            # url == "http://127.0.0.1:PORT/", serving `root`
        ...                              # url.access_log(): one dict per request nginx logged

    with fault_server(root, status=503, times=2) as srv:
        srv.url                          # "http://127.0.0.1:PORT/"
        srv.set(rate=1_000_000)          # change the faults while it runs
        srv.requests                     # one dict per request: method, path, range, if_range, authorization, status

nginx runs in the foreground as a child process with its own prefix, config, pid and logs in a temporary
directory; `etag on`, byte ranges and If-Range are nginx's defaults for static files. When nginx is not
installed the helper skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen | None, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


class BaseURL(str):
    """The server's base URL (a str ending with '/'), with the server's access log at hand."""

    log_path: Path

    def access_log(self) -> list[dict]:
        """Requests nginx has logged so far. nginx writes a line once a response is finished, which may be
        just after its client has read it: so a sync request goes first, and the log is read once that
        request's own line is there (its line, and earlier ones like it, are left out)."""
        keys = ("method", "path", "status", "bytes", "range", "if_range", "authorization")
        token = f"/.log-sync-{time.monotonic_ns()}"
        synced = self._sync(token)
        deadline = time.monotonic() + 5
        while True:
            text = self.log_path.read_text() if self.log_path.exists() else ""
            if not synced or f"\t{token}\t" in text or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        rows = []
        for line in text.splitlines():
            values = [v if v != "-" else "" for v in line.split("\t")]
            row = dict(zip(keys, values))
            if row["path"].startswith("/.log-sync-"):
                continue
            row["status"], row["bytes"] = int(row["status"]), int(row["bytes"])
            rows.append(row)
        return rows

    def _sync(self, path: str) -> bool:
        """One request for `path` (a 404 of no file), or False when the server is gone (its log is complete)."""
        import http.client

        parts = urlsplit(self)
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
            conn.request("GET", path)
            conn.getresponse().read()
            conn.close()
        except OSError:
            return False
        return True


_NGINX_CONF = """\
{user}daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 512; }}
http {{
    default_type application/octet-stream;
    types {{ text/markdown md; application/json json; }}
    log_format tsv escape=none '$request_method\\t$uri\\t$status\\t$body_bytes_sent\\t$http_range\\t$http_if_range\\t$http_authorization';
    access_log {tmp}/access.log tsv;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    sendfile on;
    tcp_nopush on;
    etag on;
    {http}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {limit}
        {locations}
    }}
}}
"""


@contextlib.contextmanager
def nginx(
    root: str | os.PathLike,
    *,
    limit_rate: str | None = None,
    locations: str | None = None,
    user: str | None = None,
    http: str | None = None,
):
    """Serve directory `root` with nginx on 127.0.0.1 and a free port; yields the base URL (BaseURL).

    limit_rate: nginx's per-connection rate limit, e.g. "2m" (2 MB/s), to make a download slow.
    locations: server-block directives replacing the default `location / { autoindex on; }`
    (tests/test_remote.py passes the ones documented in docs/nginx.conf).
    http: directives for the http block (docs/nginx-cache.conf's proxy_cache_path).
    user: the user nginx's workers run as (only when the tests run as root), as a production server's
    do, so that file permissions matter; `root` must then be readable by that user.
    """
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx not installed: apt-get install nginx-light")
    root = Path(root).resolve()
    with tempfile.TemporaryDirectory(prefix="nginx-") as tmp:
        # As root, nginx's workers would drop to `nobody` and could not read a 0700 pytest tmp dir.
        user = f"user {user or 'root'};\n" if os.geteuid() == 0 else ""
        for attempt in range(5):  # the free port can be taken between probing and nginx binding it
            port = free_port()
            conf = Path(tmp) / "nginx.conf"
            conf.write_text(
                _NGINX_CONF.format(
                    user=user,
                    tmp=tmp,
                    port=port,
                    root=root,
                    limit=f"limit_rate {limit_rate};" if limit_rate else "",
                    http=http or "",
                    locations=locations or "location / { autoindex on; }",
                )
            )
            proc = subprocess.Popen(
                [binary, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if _wait_port(port, proc):
                break
            proc.kill()
            _, err = proc.communicate()
            if attempt == 4:
                log = Path(tmp, "error.log")
                raise RuntimeError(
                    f"nginx did not start: {err.decode(errors='replace')}{log.read_text() if log.exists() else ''}"
                )
        url = BaseURL(f"http://127.0.0.1:{port}/")
        url.log_path = Path(tmp) / "access.log"
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr:
                proc.stderr.close()


# --------------------------------------------------------------------------- fault-injecting server


@dataclass
class Faults:
    """What the fault server does wrong. The failures (status, reset, truncation, corruption, stall, redirect)
    apply to the first `times` GET requests (None: all of them) and later requests are served correctly,
    which is what retries need to meet; the server's manners (no_range, no_etag, etag_salt, rate) always apply."""

    status: int | None = None  # answer with this status (e.g. 500, 503, 429, 404) instead of the file
    retry_after: str | None = None  # Retry-After header sent with `status`
    reset_after: int | None = None  # send this many body bytes, then reset the connection (TCP RST)
    truncate_after: int | None = None  # send this many body bytes, then close cleanly (body shorter than promised)
    corrupt: bool = False  # send different bytes of the right length
    no_range: bool = False  # ignore Range and If-Range: always 200 with the whole file
    no_etag: bool = False  # send no ETag and no Last-Modified
    etag_salt: str = ""  # change the ETag (as if the file had been replaced)
    stall_after: int | None = None  # after this many body bytes, send nothing for `stall` seconds
    stall: float = 0.0
    rate: float | None = None  # bytes per second, to make a download slow (e.g. to kill it halfway)
    redirect: str | None = None  # answer 302 to this base URL + the request's path
    chunked: bool = False  # send the body with Transfer-Encoding: chunked and no Content-Length
    gzip: bool = False  # send the body gzip-compressed with Content-Encoding: gzip (even if not asked for)
    content_encoding: str | None = None  # send the file's bytes as they are, labelled with this Content-Encoding
    length: int | None = None  # announce this Content-Length (and send the file's bytes, at most this many)
    endless: bool = False  # after the file, keep sending bytes (chunked, no Content-Length) until the client leaves
    times: int | None = None
    after: int = 0  # the failures start after this many GET requests (then apply to `times` of them)
    range_requests: int | None = None  # honour Range on only this many GET requests, then ignore it (200)
    etag_after: int | None = None  # after this many GET requests, change the ETag (as if the file were replaced)


class _FaultHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FaultHTTPServer

    def log_message(self, format, *args):  # keep test output clean; requests are recorded instead
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _record(self, status: int) -> None:
        h = self.headers
        self.server.owner.requests.append(
            {
                "method": self.command,
                "path": urlsplit(self.path).path,
                "status": status,
                "range": h.get("Range", ""),
                "if_range": h.get("If-Range", ""),
                "authorization": h.get("Authorization", ""),
            }
        )

    def _faults(self) -> Faults:
        owner = self.server.owner
        with owner.lock:
            f = owner.faults
            manners = Faults(
                no_range=f.no_range,
                no_etag=f.no_etag,
                etag_salt=f.etag_salt,
                rate=f.rate,
                chunked=f.chunked,
                gzip=f.gzip,
                content_encoding=f.content_encoding,
                length=f.length,
                endless=f.endless,
            )
            if self.command != "GET":
                manners.redirect = f.redirect
                return manners
            owner.got += 1
            if owner.got > 1 and f.range_requests is not None and owner.got > f.range_requests:
                manners.no_range = True
            if f.etag_after is not None and owner.got > f.etag_after:
                manners.etag_salt += "-changed"
            f = Faults(**{**vars(f), "no_range": manners.no_range, "etag_salt": manners.etag_salt})
            if owner.got <= f.after:
                return manners
            if f.times is None:
                return f
            owner.faulted += 1
            return f if owner.faulted <= f.times else manners

    def _serve(self, head: bool) -> None:
        f = self._faults()
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        path = (self.server.owner.root / rel).resolve()
        if f.redirect:
            return self._simple(302, {"Location": f.redirect.rstrip("/") + "/" + rel})
        if f.status:
            extra = {"Retry-After": f.retry_after} if f.retry_after else {}
            return self._simple(f.status, extra)
        if self.server.owner.root not in path.parents or not path.is_file():
            return self._simple(404)
        st = path.stat()
        size = st.st_size
        etag = f'"{st.st_mtime_ns:x}-{size:x}{f.etag_salt}"'
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if not f.no_etag:
            headers["ETag"] = etag
            headers["Last-Modified"] = email.utils.formatdate(st.st_mtime, usegmt=True)
        start, end, status = 0, size - 1, 200
        rng = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if rng and not f.no_range and (if_range is None or if_range == etag):
            parsed = _parse_range(rng, size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{size}"
                return self._simple(416, headers)
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if f.no_range:
            headers.pop("Accept-Ranges")
        length = end - start + 1
        headers["Content-Length"] = str(length)
        body = None
        if f.gzip:
            with open(path, "rb") as fh:
                fh.seek(start)
                body = gzip.compress(fh.read(length))
            headers["Content-Encoding"] = "gzip"
            headers["Content-Length"] = str(len(body))
        if f.content_encoding:
            headers["Content-Encoding"] = f.content_encoding
        if f.length is not None:
            headers["Content-Length"] = str(f.length)
        if f.chunked or f.endless:
            del headers["Content-Length"]
            headers["Transfer-Encoding"] = "chunked"
        self._record(status)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        if f.endless:
            return self._send_endless(path, f)
        if body is not None or f.chunked:
            if body is None:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    body = fh.read(length)
            if f.chunked:
                step = 100_000
                body = (
                    b"".join(
                        b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step])
                        for i in range(0, len(body), step)
                    )
                    + b"0\r\n\r\n"
                )
            self.wfile.write(body)
            return
        self._send_body(path, start, length, f)

    def _send_endless(self, path: Path, f: Faults) -> None:
        """The file, then zeros, chunk after chunk, until the client goes away (or 1 GiB, a test's safety net)."""
        step = 64 * 1024 if f.rate is None else max(1, int(f.rate / 20))
        data = path.read_bytes()
        pieces = [data[i : i + step] for i in range(0, len(data), step)]
        sent, began = 0, time.monotonic()
        try:
            while sent < (1 << 30):
                piece = pieces.pop(0) if pieces else bytes(step)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
                if f.rate:
                    ahead = sent / f.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:  # the client went away
            pass
        self.close_connection = True

    def _send_body(self, path: Path, start: int, length: int, f: Faults) -> None:
        limit = length
        for cut in (f.reset_after, f.truncate_after):
            if cut is not None:
                limit = min(limit, cut)
        sent = 0
        step = 64 * 1024 if f.rate is None else max(1024, int(f.rate / 20))
        began = time.monotonic()
        stalled = False
        with open(path, "rb") as fh:
            fh.seek(start)
            try:
                while sent < limit:
                    n = min(step, limit - sent)
                    if f.stall_after is not None and not stalled:
                        if sent >= f.stall_after:
                            stalled = True
                            self.wfile.flush()
                            time.sleep(f.stall)
                        else:
                            n = min(n, f.stall_after - sent)
                    data = fh.read(n)
                    if not data:
                        break
                    if f.corrupt:
                        data = bytes(b ^ 0x5A for b in data)
                    self.wfile.write(data)
                    sent += len(data)
                    if f.rate:
                        ahead = sent / f.rate - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
        if f.reset_after is not None and sent < length:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif sent < length:
            self.close_connection = True

    def _simple(self, status: int, headers: dict | None = None) -> None:
        self._record(status)
        body = f"{status}\n".encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            n = int(last)
            return (max(0, size - n), size - 1) if n > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


class _FaultHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultServer


class FaultServer:
    """A threaded HTTP/1.1 server of ours serving `root` with Range/ETag/If-Range and switchable faults."""

    def __init__(self, root: str | os.PathLike, host: str = "127.0.0.1", **faults):
        self.root = Path(root).resolve()
        self.lock = threading.Lock()
        self.faults = Faults(**faults)
        self.faulted = 0
        self.got = 0  # GET requests so far
        self.requests: list[dict] = []
        self._httpd = _FaultHTTPServer((host, 0), _FaultHandler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def set(self, **faults) -> None:
        """Replace the faults (unnamed ones return to their defaults) and restart the `times` count."""
        with self.lock:
            self.faults = Faults(**faults)
            self.faulted = self.got = 0

    def gets(self, path: str | None = None) -> list[dict]:
        """GET requests recorded so far (for a path relative to the root, if given)."""
        return [
            r for r in self.requests if r["method"] == "GET" and (path is None or r["path"] == "/" + path.lstrip("/"))
        ]

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


FAULT_NAMES = {f.name for f in fields(Faults)}


@contextlib.contextmanager
def fault_server(root: str | os.PathLike, host: str = "127.0.0.1", **faults):
    """Run a FaultServer serving `root` for the duration of the block (faults: see Faults)."""
    unknown = set(faults) - FAULT_NAMES
    if unknown:
        raise TypeError(f"unknown faults {sorted(unknown)}; known: {sorted(FAULT_NAMES)}")
    server = FaultServer(root, host=host, **faults).start()
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- a registry to pull from

CARD_TEMPLATE = """# {name}

---
model-name: {name}
backbone-name: tinynet
module-type: cv
fine-tunable: True
input-shape: [32, 32, 3]
model-version: 1
train-dataset: digits
author: [tests]
update-time: 2024-01-01
repo-link: https://example.org/{name}
user-id: {user}
used-for: inference
train-backend: {backend}
infer-backend: {backend}
mindspore-version: "{version}"
asset:
{assets}
license: Apache2.0
summary: {name} for tests
---

## Introduction

A card written by the tests.
"""


def write_card(registry_root: str | os.PathLike, card_id: str, assets: list[tuple[str, str, str]]) -> Path:
    """Write a valid card `registry_root/<card_id>.md` (card_id: USER/BACKEND/VERSION/NAME) whose assets are
    (file-format, asset-link, asset-sha256) triples; returns its path."""
    user, backend, version, name = card_id.split("/")
    lines = "".join(
        f"  - file-format: {fmt}\n    asset-link: {link}\n    asset-sha256: {sha}\n" for fmt, link, sha in assets
    )
    path = Path(registry_root, *card_id.split("/")[:-1], name + ".md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        CARD_TEMPLATE.format(name=name, user=user, backend=backend, version=version, assets=lines.rstrip("\n"))
    )
    return path

"""`registry serve DIR`: a development HTTP server for a registry tree.

For trying a remote registry locally; production hosting is any static server (docs/nginx.conf).
GET and HEAD of files under DIR, with ETag / Last-Modified (and 304 on If-None-Match /
If-Modified-Since), single byte ranges (206, or 416 when unsatisfiable; If-Range honoured).
Paths that leave DIR (`..`, symlinks pointing out) and hidden files are refused with 404.
When DIR has no index.json, `/index.json` and the sharded index (`/index/root.json` and its shards and
pages, shards.py) are generated from the tree, in memory, by the writer `registry index` uses, and
regenerated when a card changes; a sharded `index/` left in DIR is not served then (it would be older than
the tree). The shards of earlier generations stay served for KEEP_SECONDS after they were replaced, for a
client that read their root (cards published one after another regenerate the index at each request).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .errors import UsageError

_log = logging.getLogger("registry")

CHUNK = 1 << 16
KEEP_SECONDS = 60  # a replaced generation's shards stay served this long: a client reads root and shard within it
TYPES = {".md": "text/markdown; charset=utf-8", ".json": "application/json", ".txt": "text/plain; charset=utf-8"}


def parse_range(value: str, size: int) -> tuple[int, int] | None | bool:
    """(start, end) inclusive for one `bytes=` range; None if unsatisfiable; False if not understood
    (several ranges or another unit: RFC 9110 lets a server ignore Range and send the whole file)."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return False
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == "") or first == last == "":
        return False
    if first == "":
        n = int(last)
        return (max(0, size - n), size - 1) if n > 0 and size > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


class _GeneratedIndex:
    """index.json and the sharded index built from the tree, rebuilt when the set of cards or their mtimes change."""

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.Lock()
        self.key: str | None = None
        self.files: dict[str, bytes] = {}  # "index.json", "index/root.json", "index/shards/<sha>.json"
        self.previous: dict[
            str, tuple[bytes, float]
        ] = {}  # earlier generations' shards and pages: (bytes, when replaced)
        self.mtime = 0.0

    def get(self, rel: str) -> tuple[bytes, float] | None:
        """(bytes, mtime) of generated file `rel` (a POSIX path under the root), or None if there is none.
        The index and the root are current with the tree; a shard or page is served if a recent root named it."""
        from .shards import SHARD_DIR

        with self.lock:
            if not rel.startswith(SHARD_DIR + "/") or self.key is None:
                self._refresh()
            blob = self.files.get(rel) or self.previous.get(rel, (None,))[0]
            return None if blob is None else (blob, self.mtime)

    def _refresh(self) -> None:
        from .index import INDEX_NAME, build_index, dumps_index
        from .names import walk_markdown
        from .shards import ROOT_PATH, SHARD_DIR, build_shards

        stamp = hashlib.sha256()
        newest = 0.0
        for rel in walk_markdown(self.root):
            try:
                st = os.stat(self.root / rel)
            except OSError:  # a dangling or looping link: build_index reports it as a card problem
                continue
            stamp.update(f"{rel}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
            newest = max(newest, st.st_mtime)
        key = stamp.hexdigest()
        if key == self.key:
            return
        data = build_index(self.root)
        root_blob, parts = build_shards(data["cards"], data["counts"])
        now = time.monotonic()
        self.previous = {k: v for k, v in self.previous.items() if now - v[1] < KEEP_SECONDS}
        self.previous.update((k, (v, now)) for k, v in self.files.items() if k.startswith(SHARD_DIR + "/"))
        self.files = {INDEX_NAME: dumps_index(data), ROOT_PATH: root_blob}
        self.files.update((f"{SHARD_DIR}/{sha}.json", blob) for sha, blob in parts.items())
        # Past the first generation, later than the last one by a second at least (HTTP dates are in seconds):
        # a card removed or renamed changes the index without making the newest card newer.
        self.mtime = newest if self.key is None else max(newest, time.time(), self.mtime + 1)
        self.key = key


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "registry-serve"
    server: RegistryServer

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    def log_message(self, format, *args):
        if not self.server.quiet:
            _log.info("%s - %s", self.address_string(), format % args)

    def _target(self) -> Path | None:
        rel = unquote(urlsplit(self.path).path)
        parts = [p for p in rel.split("/") if p]
        if any(p in (".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts):
            return None
        root = self.server.root
        try:
            path = root.joinpath(*parts).resolve() if parts else root
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
            return None
        if path != root and root not in path.parents:  # a symlink pointing out of the tree
            return None
        return path

    def _serve(self, head: bool) -> None:
        path = self._target()
        root = self.server.root
        generated = None
        # Only the generated files' names: a card under a top-level index/ (a user called index) is the tree's.
        rel = path.relative_to(root).as_posix() if path is not None else ""
        indexing = rel in ("index.json", "index/root.json") or (
            rel.startswith("index/shards/") and rel.endswith(".json")
        )
        if indexing and not (root / "index.json").is_file():
            # The index is generated live: a sharded index/ on disk is from an earlier `registry index`, and
            # clients, which read it first, would miss every card since. The generated one is served instead.
            generated = self.server.generated.get(rel)
            if generated is None:
                return self._error(HTTPStatus.NOT_FOUND)
        if generated is not None:
            blob, mtime = generated
            size, etag, ctype = len(blob), '"' + hashlib.sha256(blob).hexdigest()[:32] + '"', TYPES[".json"]
            opener = None
        elif path is not None and path.is_file():
            st = path.stat()
            size, mtime = st.st_size, st.st_mtime
            etag = f'"{st.st_mtime_ns:x}-{size:x}"'
            ctype = TYPES.get(path.suffix.lower(), "application/octet-stream")
            opener = lambda: open(path, "rb")  # noqa: E731
        else:
            return self._error(HTTPStatus.NOT_FOUND)
        headers = {
            "ETag": etag,
            "Last-Modified": email.utils.formatdate(mtime, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": ctype,
        }
        if self._not_modified(etag, mtime):
            return self._reply(HTTPStatus.NOT_MODIFIED, headers, head=True)
        start, end, status = 0, size - 1, HTTPStatus.OK
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and (if_range is None or if_range == etag or if_range == headers["Last-Modified"]):
            parsed = parse_range(rng, size)
            if parsed is None:
                headers["Content-Range"] = f"bytes */{size}"
                return self._reply(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, headers, body=b"")
            if parsed:
                start, end = parsed
                status = HTTPStatus.PARTIAL_CONTENT
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        try:
            if opener is None:
                self.wfile.write(blob[start : end + 1])
                return
            with opener() as fh:
                fh.seek(start)
                left = end - start + 1
                while left > 0:
                    data = fh.read(min(CHUNK, left))
                    if not data:  # the file shrank while we sent it: the client sees a short body
                        self.close_connection = True
                        break
                    self.wfile.write(data)
                    left -= len(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _not_modified(self, etag: str, mtime: float) -> bool:
        inm = self.headers.get("If-None-Match")
        if inm is not None:
            return inm.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in inm.split(",")]
        ims = self.headers.get("If-Modified-Since")
        if ims:
            try:
                return int(mtime) <= email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                return False
        return False

    def _reply(self, status: HTTPStatus, headers: dict, body: bytes = b"", head: bool = False) -> None:
        self.send_response(status)
        for k, v in headers.items():
            if k != "Content-Length":
                self.send_header(k, v)
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self._reply(status, {"Content-Type": "text/plain; charset=utf-8"}, body)


class RegistryServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False):
        if not Path(root).is_dir():  # checked first: resolve() raises on a symlink loop before Python 3.13
            raise UsageError(f"{root} is not a directory: give the root of a registry tree to serve")
        root_path = Path(root).resolve()
        self.root = root_path
        self.quiet = quiet
        self.generated = _GeneratedIndex(root_path)
        try:
            super().__init__((host, port), Handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

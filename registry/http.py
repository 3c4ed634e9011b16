"""HTTP for all registry traffic (assets, indexes, cards, link checks). The bottom layer.

Contract:
- `http_session(settings)`: a requests session with our User-Agent and the bearer token only on requests
  to `settings.token_host` (never carried to another host by a redirect); `retrying_session` adds
  urllib3 retries for small GETs (indexes, cards). `requests` is imported only when a session is made.
- `network_reason(exc)` and `status_hint(status, url, settings)` turn a failure into the part of a
  sentence that says why and how to fix it; `unresolved_host(exc)` tells a host name that does not
  resolve (not worth a retry) from other network failures.
- `SpeedGuard` fails a transfer slower than REGISTRY_SPEED_LIMIT over REGISTRY_SPEED_TIME.
Settings are always passed in; this module reads no environment and imports nothing of the package
but its version.
"""

from __future__ import annotations

import functools
import socket
import time
from urllib.parse import urlsplit

from . import __version__


def http_session(settings):
    """A requests session for all registry traffic (assets, indexes, cards): our User-Agent, and the bearer
    token only on requests to REGISTRY_TOKEN_HOST. On a redirect requests drops the Authorization header
    when the host changes and does not run this hook again, so the token never follows to another host."""
    import requests  # only when the network is actually used

    session = requests.Session()
    session.headers["User-Agent"] = f"registry/{__version__}"
    session.auth = functools.partial(_token_auth, settings)
    return session


def retrying_session(settings):
    """http_session with urllib3 retries (settings.retries, 429 and 5xx, Retry-After) for small GETs; a host
    name that does not resolve is not retried (unresolved_host)."""
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class _Retry(Retry):
        def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
            if error is not None and unresolved_host(error):  # asking again cannot help: see _NO_SUCH_NAME
                from urllib3.exceptions import MaxRetryError

                raise MaxRetryError(_pool, url, error) from error
            return super().increment(method, url, response, error, _pool, _stacktrace)

    session = http_session(settings)
    retry = _Retry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        backoff_factor=0.1,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _token_auth(settings, request):
    if settings.token and settings.token_host:
        parts = urlsplit(request.url)
        if settings.token_host in ((parts.hostname or "").lower(), parts.netloc.lower()):
            request.headers["Authorization"] = f"Bearer {settings.token}"
    return request


def status_hint(status: int, url: str, settings) -> str:
    """What to do about an HTTP error status, as `; ...` to append to a sentence ("" when nothing helps)."""
    if status in (401, 403):
        host = urlsplit(url).hostname
        # A static server answers 403 for a file it may not read (save_checkpoint writes mode 0400).
        files = "; the file on the server may not be readable by the web server (the publisher must `chmod o+r` it)"
        if settings.token and settings.token_host == host:
            return f"; the token in REGISTRY_TOKEN was refused by {host}" + (
                ", or" + files[1:] if status == 403 else ""
            )
        token = f"if {host} needs a token, set REGISTRY_TOKEN and REGISTRY_TOKEN_HOST={host}"
        return f"{files}, or {token}" if status == 403 else f"; {token}"
    if status in (404, 410):
        return "; the asset-link is wrong or the file moved: fix the card or use a mirror (--mirror FROM=TO)"
    return ""


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it wraps, outermost first (requests wraps urllib3, which wraps socket errors)."""
    seen = []
    while isinstance(exc, BaseException) and exc not in seen:
        seen.append(exc)
        inner = getattr(exc, "reason", None)  # urllib3's MaxRetryError keeps its cause here
        if not isinstance(inner, BaseException):
            inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None
        exc = exc.__cause__ or exc.__context__ or inner
    return seen


# getaddrinfo's answers that the name does not exist (or never will): asking again cannot help. EAI_AGAIN
# ("temporary failure", an unreachable or overloaded resolver) is not among them and is retried.
_NO_SUCH_NAME = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL") if hasattr(socket, n)}


def unresolved_host(exc: BaseException) -> str | None:
    """The resolver's reason when `exc` comes from a host name that does not resolve (retrying is useless:
    see _NO_SUCH_NAME); None for any other failure."""
    for e in _causes(exc):
        if isinstance(e, socket.gaierror) and e.errno in _NO_SUCH_NAME:
            return (e.strerror or "name not known").lower()
    return None


def network_reason(exc: BaseException, read_timeout: float | None = None) -> str:
    """A short cause for a network failure, from the innermost exception that says something."""
    seen = _causes(exc)
    for e in reversed(seen):
        if isinstance(e, TimeoutError) or type(e).__name__ in ("ReadTimeoutError", "timeout"):
            return f"no data for {read_timeout:g} s (read timeout)" if read_timeout else "timed out"
        if isinstance(e, ConnectionResetError):
            return "the connection was reset by the server"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if type(e).__name__ == "IncompleteRead":
            return "the connection closed before the end of the body"
        reason = getattr(e, "reason", None)
        if isinstance(e, OSError) and e.strerror:
            return e.strerror[0].lower() + e.strerror[1:]
        if isinstance(reason, str) and reason:
            return reason
    text = str(seen[-1]) if seen else "unknown error"
    return text.split(": ", 1)[-1] if "Max retries" in text else text


class SpeedGuard:
    """Fails a transfer that averages under `speed_limit` bytes/s over a window of `speed_time` seconds (as curl's
    --speed-limit/--speed-time): each read may arrive within the read timeout, yet the whole never ends."""

    def __init__(self, settings, clock=time.monotonic):
        self.limit, self.window, self.clock = settings.speed_limit, settings.speed_time, clock
        self.start, self.bytes = clock(), 0

    def slow(self, n: int) -> str | None:
        """Count `n` bytes just received; the cause, when the transfer is too slow."""
        if not self.limit:
            return None
        self.bytes += n
        elapsed = self.clock() - self.start
        if elapsed >= self.window:
            if self.bytes < self.limit * elapsed:
                return (
                    f"{self.bytes:,} bytes in {elapsed:.1f} s, slower than REGISTRY_SPEED_LIMIT "
                    f"({self.limit:g} bytes/s over REGISTRY_SPEED_TIME, {self.window:g} s)"
                )
            self.start, self.bytes = self.clock(), 0
        return None

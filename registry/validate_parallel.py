"""An ordered map over forked processes, for `registry validate` of large trees.

`ordered_map(fn, items, jobs)` yields fn(item) for each item in the order of `items`, whatever the
number of processes, so a report is byte-identical to the serial run's. `jobs` processes check
(default os.cpu_count()), and this process is one of them: it forks jobs - 1 workers, hands out chunks
of CHUNK items, checks chunks itself between collecting what the workers send, and yields results in
order (a few chunks held until the one before them is in). So with 2 jobs only one extra interpreter
exists, and nothing is sent to a worker but a chunk number: forked, it already has `items`, `fn`
(which need not be picklable) and what this process imported and compiled before the fork (the
parent checks the first chunk before forking, so the schema and validator are loaded once).
Results come back pickled: `fn` should return small tuples, and the caller keeps only what it needs.

Fewer than MIN_PARALLEL items, jobs=1, or a platform without fork run in this process alone.
An exception `fn` raises in a worker is raised here at its item's turn, as the serial run raises
it; a worker that dies (killed, out of memory) raises WorkerDied naming the cards it held, never a hang.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Callable

from .errors import RegistryError, UsageError

MIN_PARALLEL = 256  # items: below this the serial run is faster than forking a worker
CHUNK = 16  # items a process takes at once: about 5 ms of cards, so the parent polls its workers often
DEPTH = 3  # chunks handed to a worker ahead, so it never waits while the parent checks its own chunk
_STOP = -1


class WorkerDied(RegistryError):
    """A worker process ended without sending its results (a signal, the out-of-memory killer)."""

    exit_code = 2  # as an I/O error: the system stopped the check, no report was produced


def _shown(item) -> str:
    """An item as a message names it: validate's are (path, root, check_assets), named by their path."""
    return repr(item[0] if isinstance(item, tuple) and item else item)


def _jobs(jobs: int | None) -> int:
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: give a number of processes of 1 or more")
    return jobs or os.cpu_count() or 1


def ordered_map(fn: Callable, items: Sequence, jobs: int | None = None) -> Iterator:
    jobs = _jobs(jobs)
    chunks = -(-len(items) // CHUNK)
    if jobs == 1 or len(items) < MIN_PARALLEL or not hasattr(os, "fork"):
        yield from map(fn, items)
        return
    yield from map(fn, items[:CHUNK])
    pool = _Pool(fn, items, min(jobs - 1, chunks - 1))
    finished = False
    try:
        yield from pool.results(first=1, chunks=chunks)
        finished = True
    finally:
        pool.close(kill=not finished)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}" + (" (perhaps the out-of-memory killer)" if number == signal.SIGKILL else "")
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


class _Pool:
    def __init__(self, fn: Callable, items: Sequence, workers: int):
        self.fn, self.items = fn, items
        self.pids: list[int] = []
        self.todo: list[int] = []  # write ends: chunk numbers to a worker
        self.done: list[int] = []  # read ends: framed pickles from a worker
        for _ in range(workers):
            todo_r, todo_w = os.pipe()
            done_r, done_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                for fd in (todo_w, done_r, *self.todo, *self.done):
                    os.close(fd)
                _serve(fn, items, todo_r, done_w)
            os.close(todo_r)
            os.close(done_w)
            self.pids.append(pid)
            self.todo.append(todo_w)
            self.done.append(done_r)

    def results(self, first: int, chunks: int) -> Iterator:
        fn, items = self.fn, self.items
        held: dict[int, tuple] = {}  # chunk number -> (results, None), or (results before it, exception)
        queued = [deque() for _ in self.pids]  # chunks handed to each worker, oldest first
        buffers = [bytearray() for _ in self.pids]
        nxt = given = first

        def hand(w: int) -> None:
            nonlocal given
            while given < chunks and len(queued[w]) < DEPTH:
                os.write(self.todo[w], given.to_bytes(4, "little"))
                queued[w].append(given)
                given += 1

        def collect(timeout: float | None) -> None:
            ready, _, _ = select.select([fd for w, fd in enumerate(self.done) if queued[w]], [], [], timeout)
            for fd in ready:
                w = self.done.index(fd)
                data = os.read(fd, 1 << 20)
                if not data:
                    self._died(w, queued[w][0])
                buf = buffers[w]
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + (size := int.from_bytes(buf[:4], "little")):
                    k, payload = pickle.loads(buf[4 : 4 + size])
                    del buf[: 4 + size]
                    held[k] = payload
                    queued[w].remove(k)
                hand(w)

        for w in range(len(self.pids)):
            hand(w)
        while nxt < chunks:
            if nxt in held:
                results, exc = held.pop(nxt)
                yield from results
                if exc is not None:  # raised by the item after these, as the serial run raises it
                    raise exc
                nxt += 1
                continue
            if any(queued):
                collect(0 if given < chunks else None)
            if nxt in held or given >= chunks:
                continue
            k = given  # no result to pass on: check the next chunk here
            given += 1
            if k == nxt:
                yield from map(fn, items[k * CHUNK : (k + 1) * CHUNK])
                nxt += 1
            else:
                held[k] = _run(fn, items[k * CHUNK : (k + 1) * CHUNK])  # an exception waits for its turn

    def _died(self, w: int, k: int) -> None:
        _, status = os.waitpid(self.pids[w], 0)
        self.pids[w] = 0
        first, last = self.items[k * CHUNK], self.items[min(len(self.items), (k + 1) * CHUNK) - 1]
        raise WorkerDied(
            f"a validate worker process {_describe(status)} while checking items {k * CHUNK + 1} to "
            f"{min(len(self.items), (k + 1) * CHUNK)} ({_shown(first)} to {_shown(last)}): rerun with --jobs 1 "
            "to check them in one process"
        )

    def close(self, kill: bool) -> None:
        """Stop the workers: idle ones exit on the stop message; after an error or an early stop, all are killed."""
        for pid in self.pids:
            if pid and kill:
                os.kill(pid, signal.SIGKILL)
        for fd in self.todo:
            try:
                os.write(fd, _STOP.to_bytes(4, "little", signed=True))
            except OSError:
                pass  # that worker is gone
            os.close(fd)
        for fd in self.done:
            os.close(fd)  # a worker still writing gets EPIPE and exits
        for pid in self.pids:
            if pid:
                os.waitpid(pid, 0)


def _serve(fn: Callable, items: Sequence, todo: int, done: int) -> None:
    """A worker's life: check each chunk it is handed, send its results, exit at the stop message."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C is the parent's to handle: it stops the workers
        gc.freeze()  # the parent's objects are not this process's to scan (nor to copy by scanning them)
        while True:
            head = _read(todo, 4)
            if len(head) < 4:
                break
            k = int.from_bytes(head, "little", signed=True)
            if k == _STOP:
                break
            out, exc = _run(fn, items[k * CHUNK : (k + 1) * CHUNK])
            frame = pickle.dumps((k, (out, exc if exc is None else _picklable(exc))), pickle.HIGHEST_PROTOCOL)
            _write(done, len(frame).to_bytes(4, "little") + frame)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _run(fn: Callable, part: Sequence) -> tuple[list, Exception | None]:
    """fn over a chunk: its results, and the exception of the item after them if one raised."""
    out: list = []
    try:
        for item in part:
            out.append(fn(item))
    except Exception as exc:
        return out, exc
    return out, None


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _read(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = os.read(fd, n - len(data))
        if not part:
            break
        data += part
    return data


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]

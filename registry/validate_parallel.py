"""An ordered map over worker processes, for `registry validate` of large trees.

`ordered_map(fn, items, jobs)` yields fn(*item) for each item in the order of `items`, whatever the
number of workers, so a report is byte-identical to the serial run's. Items go to `jobs` processes
(default os.cpu_count()) in chunks, and results come back as they are consumed: the caller keeps
what it wants of each (validate keeps a FileResult and compact sha256 digests, never the parsed card),
so memory does not grow with the cards held. Fewer than MIN_PARALLEL items, or jobs=1, run in this
process: starting workers costs more than it saves there. `fn` must be a module-level function (it is
sent to workers by name); workers are forked where the platform can, so they start with what this
process has imported (the schema validator) instead of importing it again.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from typing import Callable

from .errors import UsageError

MIN_PARALLEL = 256  # cards: below this the serial run is faster than starting two workers
CHUNK = 32  # items a worker takes at once: few round trips, and the order is kept chunk by chunk


def _call(job):
    fn, args = job
    return fn(*args)


def ordered_map(fn: Callable, items: Sequence[tuple], jobs: int | None = None) -> Iterator:
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: give a number of worker processes of 1 or more")
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(items) < MIN_PARALLEL:
        for args in items:
            yield fn(*args)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(min(jobs, max(1, len(items) // CHUNK))) as pool:
        yield from pool.imap(_call, ((fn, args) for args in items), chunksize=CHUNK)

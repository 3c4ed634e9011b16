"""How old a live lock-free download's partial file gets, the figure RESUME_AFTER must stay above.

A pull with REGISTRY_LOCKS=none downloads from the fault server on loopback, which stalls the body after
1 MiB for STALL seconds (the read timeout is longer, so the pull waits, as it would for a slow server or
during a retry). The partial file's age is sampled every 50 ms against the mtime of a file just written
in the same directory (the file server's clock, as Cache.adopt_partial measures it). Reference, in the
same run: a file nobody touches, created when the stall began, whose age is what the partial's would be
without the heartbeat (its writer receives nothing). Run it on a loaded machine too: the margin is for
scheduling delays.

    .venv/bin/python benchmarks/bench_heartbeat.py [--stall 15]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry.cache import HEARTBEAT, RESUME_AFTER  # noqa: E402
from registry.settings import Settings  # noqa: E402
from registry.transfer import pull  # noqa: E402
from tests.servers import fault_server, write_card  # noqa: E402

BASE = "https://download.example.org/m/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stall", type=float, default=15.0, help="seconds the server sends nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        site = tmp / "site"
        site.mkdir()
        data = os.urandom(3 << 20)
        (site / "a.ckpt").write_bytes(data)
        write_card(tmp / "reg", "mindspore/cpu/2.0/a", [("ckpt", BASE + "a.ckpt", hashlib.sha256(data).hexdigest())])
        home = tmp / "home"
        with fault_server(site, stall_after=1 << 20, stall=args.stall, times=1) as srv:
            s = Settings(
                home=home,
                mirrors=((BASE, srv.url),),
                retries=0,
                read_timeout=args.stall * 2,
                progress=False,
                locks="none",
            )
            t = threading.Thread(
                target=pull, args=("mindspore/cpu/2.0/a",), kwargs={"registry": tmp / "reg", "settings": s}
            )
            t.start()
            ages, untouched, ref = [], None, home / "now"
            while t.is_alive():
                for p in (home / "partial").glob("*.part") if (home / "partial").is_dir() else ():
                    try:
                        ref.write_bytes(b"")
                        now = ref.stat().st_mtime
                        if p.stat().st_size >= 1 << 20:  # the stall has begun
                            if untouched is None:
                                untouched = home / "untouched"
                                untouched.write_bytes(b"")
                            ages.append((now - p.stat().st_mtime, now - untouched.stat().st_mtime))
                    except FileNotFoundError:
                        pass
                time.sleep(0.05)
    print(f"| file during a {args.stall:g} s stall ({len(ages)} samples) | max age |")
    print("|---|---|")
    print(f"| reference: a file nobody touches | {max(a for _, a in ages):.2f} s |")
    print(f"| the live download's partial (HEARTBEAT {HEARTBEAT:g} s) | {max(a for a, _ in ages):.2f} s |")
    print(f"| RESUME_AFTER (another machine's partial older than this is adopted) | {RESUME_AFTER:g} s |")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

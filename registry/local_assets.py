"""Checks of the asset files a card links locally, shared by `registry index` and
`registry validate --check-assets` (one implementation, one set of rule ids).

A local link is a path relative to the card (`weights/net.ckpt`) or a `file:` URL; remote links
are never fetched here (`registry check-links` asks the servers). For each local asset:

    asset-missing          the file does not exist, or is not a regular file
    asset-outside-tree     (with a tree root) a relative link that leaves the tree: served, it is not found
    asset-not-readable     the file is not readable by other users (mode o+r): a static server
                           running as another user answers 403 for it
    asset-size-mismatch    the card declares an asset-size the file does not have
    asset-sha256-mismatch  the file's sha256 is not the declared one (a declared prefix of 8..63 hex
                           digits must start the digest)

Each problem is located at the asset's line in the card. A file is hashed once per AssetChecker
(keyed by device, inode, size and mtime), so cards sharing one file cost one read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .card import Card, Problem
from .errors import UsageError
from .names import is_sha256, sha256_text


def local_path(link: str, card_dir: Path) -> tuple[Path, bool] | None:
    """(path, relative) of the file a local asset link names, or None for a remote link."""
    parts = urlsplit(link)
    if parts.scheme == "file":
        return Path(unquote(parts.path)), False
    if not parts.scheme and not parts.netloc and link and not link.startswith("/"):
        return card_dir / unquote(parts.path), True
    return None


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, links resolved, lies inside `root` (itself resolved)."""
    try:
        return root in path.resolve().parents
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return False


class AssetChecker:
    """Runs the local asset checks; keeps the digests it computed for the next cards."""

    def __init__(self):
        self._digests: dict[tuple, str] = {}

    def digest(self, path: Path, st: os.stat_result) -> str:
        from .cache import hash_file

        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = hash_file(path)[0]
        return self._digests[key]

    def check(self, card: Card, card_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> list[Problem]:
        """Problems of the local assets of `card`, whose file lies in `card_dir`; with `root`, links
        must stay inside that tree."""
        root = Path(root).resolve() if root is not None else None
        out = []
        for i, item in card.asset_items:
            link = item.get("asset-link")
            found = local_path(link, Path(card_dir)) if isinstance(link, str) else None
            if found is None:
                continue
            out += self._check_one(card, i, item, link, *found, root)
        return out

    def _check_one(
        self, card: Card, i: int, item: dict, link: str, path: Path, relative: bool, root: Path | None
    ) -> list[Problem]:
        at = ("asset", i, "asset-link")
        what = f"asset {i + 1} ({link})"
        if relative and root is not None and not inside(path, root):
            return [
                card.problem(
                    at,
                    "error",
                    "asset-outside-tree",
                    f"{what} leaves the registry tree {root}, so a server of the tree cannot serve it: "
                    "move the file into the tree and link it relative to the card",
                )
            ]
        try:
            st = path.stat()
        except (OSError, RuntimeError) as exc:
            reason = getattr(exc, "strerror", None) or "a symlink loop"
            return [
                card.problem(
                    at,
                    "error",
                    "asset-missing",
                    f"{what} names {path}, which cannot be found ({reason}): put the file there or fix the link",
                )
            ]
        if not stat.S_ISREG(st.st_mode):
            return [
                card.problem(
                    at,
                    "error",
                    "asset-missing",
                    f"{what} names {path}, which is not a regular file: link the asset file itself",
                )
            ]
        out = []
        if not st.st_mode & stat.S_IROTH:
            out.append(
                card.problem(
                    at,
                    "error",
                    "asset-not-readable",
                    f"{what} is not readable by other users (mode {stat.filemode(st.st_mode)}), so a web "
                    f"server answers 403 for it: run `chmod o+r {path}` (mindspore.save_checkpoint writes 0400)",
                )
            )
        size = item.get("asset-size")
        if isinstance(size, int) and not isinstance(size, bool) and size != st.st_size:
            out.append(
                card.problem(
                    ("asset", i, "asset-size"),
                    "error",
                    "asset-size-mismatch",
                    f"{what} is {st.st_size} bytes but the card says asset-size {size}: "
                    f"write `asset-size: {st.st_size}` (`registry hash FILE` prints both)",
                )
            )
        declared = sha256_text(item.get("asset-sha256"))
        if is_sha256(declared, prefix=True):  # other values are the schema's to report
            try:
                actual = self.digest(path, st)
            except UsageError as exc:  # unreadable by us: the mode bits above may still allow others
                out.append(card.problem(at, "error", "asset-missing", f"{what}: {exc.message}"))
                return out
            if not actual.startswith(declared):
                out.append(
                    card.problem(
                        ("asset", i, "asset-sha256"),
                        "error",
                        "asset-sha256-mismatch",
                        f"{what} has sha256 {actual}, not the declared {declared}: if the file is "
                        f"the right one, write `asset-sha256: {actual}`",
                    )
                )
        return out

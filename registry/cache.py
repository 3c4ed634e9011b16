"""The local asset cache: content-addressed blobs by sha256, plus a per-model view.

Layout under HOME ($REGISTRY_HOME, else the platform's user cache dir):

    blobs/sha256/<aa>/<digest>         a verified asset, read-only (0o444), named by its sha256
    blobs/sha256/<aa>/<digest>.stamp   JSON {sha256, size, mtime_ns, ino} written right after verification
    partial/<digest>.part              bytes received so far for a download in progress or interrupted
    partial/<digest>.json              {url, etag, last_modified, size}: what the partial bytes came from
                                       (If-Range validator for resuming them)
    locks/<digest>.lock                one file lock per blob: one process downloads, the others wait
    locks/model-<sha256 of id>.lock    serializes updates of one model view
    models/<id>/<filename>             the human view: relative symlinks to blobs (hardlink, else copy, where
                                       symlinks are not possible), named by the asset's file name
    models/<id>/.view.json             {id, files: {filename: {sha256, size, format, url}}}: what the view holds

Invariants: a blob path only ever holds bytes whose sha256 is its name (they are written to a partial file,
fsynced, verified and renamed; a reader never sees half a file). A blob whose stat still matches its stamp
is trusted without reading it; any other blob is re-hashed before use, and `registry cache verify` re-hashes
them all.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import NotFoundError, RegistryError, UsageError
from .text import mask_passwords, printable

CHUNK = 1 << 20
VIEW_FILE = ".view.json"


def hash_file(path: str | os.PathLike, length: int | None = None, digest=None) -> tuple[str, int]:
    """Streamed sha256 and size of a file, or of its first `length` bytes (never the whole file in memory).

    `digest`: a hashlib object to continue (it is updated in place).
    """
    digest = hashlib.sha256() if digest is None else digest
    size = 0
    try:
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while length is None or size < length:
                want = CHUNK if length is None else min(CHUNK, length - size)
                n = fh.readinto(view[:want])
                if not n:
                    break
                digest.update(view[:n])
                size += n
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory; give a file to hash") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (no-op where directories cannot be opened, i.e. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sweep_tmp(directory: Path) -> None:
    """Remove temporary files a killed process left in a view directory. Call with the model's lock held:
    temporary files are only written under it, so any found then belongs to no running process."""
    for p in directory.glob(".*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ViewFile:
    model: str
    filename: str
    sha256: str
    size: int
    format: str
    url: str


class Cache:
    def __init__(self, home: str | os.PathLike):
        self.home = Path(home).expanduser()

    @classmethod
    def from_settings(cls, settings=None) -> "Cache":
        from .settings import current

        return cls((settings or current()).home)

    # ----------------------------------------------------------------- paths

    def blob_path(self, digest: str) -> Path:
        return self.home / "blobs" / "sha256" / digest[:2] / digest

    def stamp_path(self, digest: str) -> Path:
        return self.blob_path(digest).with_name(digest + ".stamp")

    def partial_path(self, digest: str) -> Path:
        return self.home / "partial" / f"{digest}.part"

    def partial_meta_path(self, digest: str) -> Path:
        return self.home / "partial" / f"{digest}.json"

    def model_dir(self, model_id: str) -> Path:
        from .catalog import check_name

        return self.home.joinpath("models", *check_name(model_id).split("/"))

    def lock(self, digest: str, timeout: float = -1):
        return self._lock(f"{digest}.lock", timeout)

    def model_lock(self, model_id: str, timeout: float = -1):
        return self._lock(f"model-{hashlib.sha256(model_id.encode()).hexdigest()[:32]}.lock", timeout)

    def _lock(self, name: str, timeout: float):
        from filelock import FileLock

        locks = self.home / "locks"
        self._mkdir(locks)
        return FileLock(str(locks / name), timeout=timeout)

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the cache directory {path}: {exc.strerror or exc}; "
                             "set REGISTRY_HOME to a writable directory") from None

    # ----------------------------------------------------------------- blobs

    def trusted(self, digest: str) -> Path | None:
        """The blob's path if it exists and its stat matches the stamp written when it was verified."""
        path = self.blob_path(digest)
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = _read_json(self.stamp_path(digest))
        if stamp and stamp.get("sha256") == digest and [stamp.get("size"), stamp.get("mtime_ns"), stamp.get("ino")] \
                == [st.st_size, st.st_mtime_ns, st.st_ino]:
            return path
        return None

    def lookup(self, digest: str) -> Path | None:
        """The blob's path if it is cached and intact: trusted by its stamp, else re-hashed (and restamped,
        or removed when its bytes are wrong). Call with the blob's lock held."""
        path = self.trusted(digest)
        if path is not None:
            return path
        path = self.blob_path(digest)
        if not path.exists():
            return None
        return path if self.verify_blob(digest) else None

    def verify_blob(self, digest: str) -> bool:
        """Re-hash a blob: stamp it when intact, remove it (and its stamp) when not."""
        path = self.blob_path(digest)
        actual, _ = hash_file(path)
        if actual == digest:
            self._stamp(digest)
            return True
        self._remove_blob(digest)
        return False

    def _stamp(self, digest: str) -> None:
        st = os.stat(self.blob_path(digest))
        try:
            write_atomic(self.stamp_path(digest), json.dumps(
                {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino,
                 "verified": time.time()}).encode())
        except OSError:  # e.g. a full disk: the blob is verified; without a stamp it is only re-hashed next time
            pass

    def commit(self, source: Path, digest: str) -> Path:
        """Move a verified, fsynced file into the cache as blob `digest` (atomic rename), then stamp it."""
        target = self.blob_path(digest)
        self._mkdir(target.parent)
        os.chmod(source, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(source, target)
        fsync_dir(target.parent)
        self._stamp(digest)
        return target

    def _remove_blob(self, digest: str) -> None:
        for p in (self.stamp_path(digest), self.blob_path(digest)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    def blobs(self) -> Iterator[tuple[str, Path]]:
        root = self.home / "blobs" / "sha256"
        if not root.is_dir():
            return
        for sub in sorted(root.iterdir()):
            if sub.is_dir():
                for p in sorted(sub.iterdir()):
                    if len(p.name) == 64 and p.is_file():
                        yield p.name, p

    def discard_partial(self, digest: str) -> None:
        for p in (self.partial_path(digest), self.partial_meta_path(digest)):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    # ----------------------------------------------------------------- model views

    def link(self, model_id: str, filename: str, digest: str, *, size: int, file_format: str, url: str) -> Path:
        """Put blob `digest` in model `model_id`'s view as `filename` and record it. Call with the blob's lock held."""
        directory = self.model_dir(model_id)
        view = directory / filename
        blob = self.blob_path(digest)
        target = os.path.relpath(blob, directory)
        record = {"sha256": digest, "size": size, "format": file_format, "url": mask_passwords(url)}
        with self.model_lock(model_id):  # `rm` empties and removes the directory under this lock
            self._mkdir(directory)
            _sweep_tmp(directory)
            try:
                if not self._links_to(view, blob, target):
                    tmp = directory / f".{filename}.{os.getpid()}.{threading.get_ident()}.tmp"
                    try:
                        os.symlink(target, tmp)
                    except (OSError, NotImplementedError):
                        try:
                            os.link(blob, tmp)
                        except OSError:
                            shutil.copyfile(blob, tmp)
                    os.replace(tmp, view)
                data = _read_json(directory / VIEW_FILE) or {}
                files = data.get("files") if isinstance(data.get("files"), dict) else {}
                if files.get(filename) != record or data.get("id") != model_id:
                    files[filename] = record
                    write_atomic(directory / VIEW_FILE, json.dumps({"id": model_id, "files": files}, indent=1,
                                                                   sort_keys=True).encode())
            except OSError as exc:
                raise RegistryError(f"cannot write to the cache directory {directory}: {exc.strerror or exc}; "
                                    "free some space or set REGISTRY_HOME to another disk", exit_code=2) from None
        return view

    @staticmethod
    def _links_to(view: Path, blob: Path, target: str) -> bool:
        try:
            if view.is_symlink():
                return os.readlink(view) == target
            a, b = os.stat(view), os.stat(blob)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def views(self) -> list[tuple[str, Path, dict]]:
        """(model id, view directory, its files record) for every model in the cache."""
        root = self.home / "models"
        found = []
        if not root.is_dir():
            return found
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            if VIEW_FILE in filenames:
                data = _read_json(Path(dirpath) / VIEW_FILE) or {}
                files = data.get("files") if isinstance(data.get("files"), dict) else {}
                model_id = Path(dirpath).relative_to(root).as_posix()
                found.append((model_id, Path(dirpath), files))
        return sorted(found)

    def view_files(self) -> list[ViewFile]:
        return [ViewFile(mid, fn, rec.get("sha256", ""), int(rec.get("size") or 0), rec.get("format", ""), rec.get("url", ""))
                for mid, _, files in self.views() for fn, rec in sorted(files.items()) if isinstance(rec, dict)]

    def referenced(self) -> set[str]:
        return {vf.sha256 for vf in self.view_files()}

    def find_model(self, name: str) -> str:
        """The cached model a user means: a full id or the short name of exactly one cached model."""
        from .catalog import check_name

        name = check_name(name)
        ids = [mid for mid, _, _ in self.views()]
        if name in ids:
            return name
        matches = [i for i in ids if i.rsplit("/", 1)[-1] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise NotFoundError(f"model name {name!r} is ambiguous in the cache: use one of the full ids {', '.join(matches)}")
        import difflib

        close = difflib.get_close_matches(name, ids + [i.rsplit("/", 1)[-1] for i in ids], n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `registry cache ls` lists the cached models"
        raise NotFoundError(f"no model {name!r} in the cache {self.home}{hint}")

    # ----------------------------------------------------------------- maintenance

    def ls(self) -> dict:
        models = []
        for mid, directory, files in self.views():
            rows = []
            for fn, rec in sorted(files.items()):
                digest = rec.get("sha256", "")
                present = self.blob_path(digest).is_file() and (directory / fn).exists()
                rows.append({"filename": fn, "sha256": digest, "size": int(rec.get("size") or 0),
                             "format": rec.get("format", ""), "path": str(directory / fn), "present": present})
            models.append({"id": mid, "files": rows, "size": sum(r["size"] for r in rows)})
        blobs = [(d, p.stat().st_size) for d, p in self.blobs()]
        refs = self.referenced()
        partial = [p for p in (self.home / "partial").glob("*.part")] if (self.home / "partial").is_dir() else []
        return {
            "home": str(self.home),
            "models": models,
            "blobs": {"count": len(blobs), "size": sum(s for _, s in blobs)},
            "unreferenced": [{"sha256": d, "size": s} for d, s in blobs if d not in refs],
            "partial": {"count": len(partial), "size": sum(p.stat().st_size for p in partial)},
        }

    def verify(self) -> dict:
        """Re-hash every blob (removing bad ones) and check that every view file points at a cached blob."""
        checked, total, bad = 0, 0, []
        for digest, path in list(self.blobs()):
            with self.lock(digest):
                if not path.exists():
                    continue
                actual, size = hash_file(path)
                checked += 1
                total += size
                if actual == digest:
                    self._stamp(digest)
                else:
                    bad.append({"sha256": digest, "actual": actual, "size": size})
                    self._remove_blob(digest)
        broken = [{"model": vf.model, "filename": vf.filename, "sha256": vf.sha256}
                  for vf in self.view_files() if not self.blob_path(vf.sha256).is_file()]
        return {"checked": checked, "size": total, "bad": bad, "missing": broken}

    def _remove_unreferenced(self, digests) -> tuple[list[str], int]:
        """Remove blobs no view references, each under its lock, re-checking the views under the lock."""
        removed, freed = [], 0
        for digest in digests:
            lock = self.lock(digest, timeout=0)
            try:
                lock.acquire()
            except Exception:  # filelock.Timeout: a pull is using this blob right now
                continue
            try:
                if digest in self.referenced():
                    continue
                path = self.blob_path(digest)
                size = path.stat().st_size if path.exists() else 0
                if path.exists() or self.stamp_path(digest).exists():
                    self._remove_blob(digest)
                    removed.append(digest)
                    freed += size
            finally:
                lock.release()
        return removed, freed

    def prune(self) -> dict:
        """Remove blobs no model view uses, and partial downloads no process is writing."""
        refs = self.referenced()
        removed, freed = self._remove_unreferenced([d for d, _ in self.blobs() if d not in refs])
        partials = []
        pdir = self.home / "partial"
        if pdir.is_dir():
            for p in sorted(pdir.glob("*.part")) + sorted(pdir.glob("*.json")):
                digest = p.name.split(".", 1)[0]
                lock = self.lock(digest, timeout=0)
                try:
                    lock.acquire()
                except Exception:  # a download in progress holds it
                    continue
                try:
                    if p.exists():
                        freed += p.stat().st_size
                        p.unlink()
                        partials.append(p.name)
                finally:
                    lock.release()
        for d in self.home.joinpath("blobs", "sha256").glob("*/*.stamp") if self.home.joinpath("blobs").is_dir() else []:
            if not d.with_name(d.name[:-6]).exists():  # a stamp left by a blob removed by hand
                d.unlink(missing_ok=True)
        return {"removed_blobs": removed, "removed_partial": partials, "freed": freed}

    def rm(self, name: str) -> dict:
        """Remove a model's view, then the blobs no other view uses."""
        model_id = self.find_model(name)
        directory = self.model_dir(model_id)
        with self.model_lock(model_id):
            files = (_read_json(directory / VIEW_FILE) or {}).get("files") or {}
            digests = sorted({rec.get("sha256", "") for rec in files.values() if isinstance(rec, dict)})
            for fn in list(files) + [VIEW_FILE]:
                (directory / fn).unlink(missing_ok=True)
            if directory.is_dir():
                _sweep_tmp(directory)
            root = self.home / "models"
            d = directory
            while d != root and d.is_dir() and not any(d.iterdir()):
                d.rmdir()
                d = d.parent
        removed, freed = self._remove_unreferenced(digests)
        return {"id": model_id, "removed_blobs": removed, "freed": freed}

    # ----------------------------------------------------------------- CLI

    def cli(self, args, out=None) -> int:
        out = out or sys.stdout
        action = args.cache_command
        as_json = getattr(args, "json", False)

        def emit(data, lines):
            if as_json:
                json.dump(data, out, indent=2, sort_keys=True)
                out.write("\n")
            else:
                for line in lines:  # ids and file names come from view records anyone may have written
                    print(printable(line), file=out)

        try:
            if action == "ls":
                data = self.ls()
                lines = [f"cache {data['home']}"]
                for m in data["models"]:
                    lines.append(f"{m['id']}  {human_size(m['size'])}")
                    for f in m["files"]:
                        state = "" if f["present"] else "  (missing: pull it again)"
                        lines.append(f"  {f['sha256'][:12]}  {human_size(f['size']):>10}  {f['filename']}{state}")
                lines.append(f"{data['blobs']['count']} blobs, {human_size(data['blobs']['size'])}; "
                             f"{len(data['unreferenced'])} unreferenced; {data['partial']['count']} partial downloads, "
                             f"{human_size(data['partial']['size'])}")
                emit(data, lines)
                return 0
            if action == "verify":
                data = self.verify()
                lines = [f"bad blob {b['sha256']}: its bytes hash to {b['actual']}; removed (pull again)" for b in data["bad"]]
                lines += [f"model {m['model']}: {m['filename']} has no blob {m['sha256'][:12]} (pull it again)" for m in data["missing"]]
                state = "ok" if not lines else f"{len(data['bad'])} bad, {len(data['missing'])} missing"
                lines.append(f"verified {data['checked']} blobs, {human_size(data['size'])}: {state}")
                emit(data, lines)
                return 0 if not data["bad"] and not data["missing"] else 1
            if action == "prune":
                data = self.prune()
                emit(data, [f"removed {len(data['removed_blobs'])} blobs and {len(data['removed_partial'])} partial files, "
                            f"freed {human_size(data['freed'])}"])
                return 0
            if action == "rm":
                data = self.rm(args.name)
                emit(data, [f"removed {data['id']}: {len(data['removed_blobs'])} blobs, freed {human_size(data['freed'])}"])
                return 0
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise RegistryError(f"cache {self.home}: {exc.strerror or exc}{where}", exit_code=2) from None
        raise UsageError(f"unknown cache action {action!r}: use ls, verify, prune or rm")


"""Publishing a run safely (DESIGN §3 "Running safely"): a lock on OUT, a staging directory beside
it, and an atomic swap when everything is written.

- ``OutputLock``: ``flock`` on ``.<OUT name>.lock`` beside OUT (the lock file stays; it holds the
  pid and start time of the run that has it). A second run into the same OUT fails at once
  naming the lock, or waits for it with ``wait=True``.
- ``stage``: a new directory ``.<OUT name>.staging-XXXX`` beside OUT (same file system, so the
  swap is a rename) where the run writes everything. Creating it is the writability check,
  done before any data is loaded.
- ``publish``: swaps the staging directory into OUT with one ``renameat2(RENAME_EXCHANGE)``
  (Linux; two renames where the file system does not support it), then removes the previous
  content. Files in OUT that a run does not write are carried over first, so nothing of the
  user's is dropped. Until the swap, OUT is untouched: a run that fails or is killed leaves
  the previous complete run byte-identical (a later run removes its leftover staging directory).
"""
from __future__ import annotations

import ctypes
import datetime as dt
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from analysis.errors import InputError, PublishError

__all__ = ["OutputLock", "stage", "publish", "discard", "WRITE_ERRNOS", "is_write_error"]

# errors of the file system rather than of the run: no space, quota, read-only, I/O, file too big
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def is_write_error(exc: BaseException) -> bool:
    """True for an OSError that says the file system cannot take what is written."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def _beside(out: Path, kind: str) -> str:
    return f".{out.name}.{kind}"


class OutputLock:
    """An exclusive ``flock`` on ``.<OUT>.lock`` beside OUT, held for the whole run.

    ``acquire`` raises InputError (exit 2) when OUT cannot be written or, without ``wait``,
    when another run holds the lock; with ``wait`` it blocks until the other run ends and calls
    ``log`` once to say so."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out.parent / f"{_beside(out, 'lock')}"
        self._fd: int | None = None

    def acquire(self, wait: bool = False, log: Callable[[str], None] = print) -> "OutputLock":
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"--out {self.out} cannot be written: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another run"
            if not wait:
                os.close(fd)
                raise InputError(f"--out {self.out} is locked by {holder} (lock file {self.path}); "
                                 f"run with --wait to wait for it") from None
            log(f"waiting for the lock on {self.out} ({self.path}), held by {holder}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"the run of pid {os.getpid()} started "
                      f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _leftovers(out: Path) -> Iterable[Path]:
    for kind in ("staging-", "old-"):
        yield from out.parent.glob(f"{_beside(out, kind)}*")


def stage(out: Path) -> Path:
    """A fresh staging directory beside OUT (call with the lock held). Leftovers of runs that
    were killed are removed first. Raises InputError when it cannot be created."""
    for old in _leftovers(out):
        shutil.rmtree(old, ignore_errors=True)
    try:
        path = Path(tempfile.mkdtemp(prefix=_beside(out, "staging-"), dir=out.parent))
    except OSError as exc:
        raise InputError(f"--out {out} cannot be written: {exc.strerror or exc}") from None
    mode = out.stat().st_mode & 0o7777 if out.is_dir() else 0o777 & ~_umask()
    path.chmod(mode)  # mkdtemp's 0700 would hide the reports from a web server reading OUT
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def publish(staging: Path, out: Path, keep: Callable[[str], bool]) -> None:
    """Make ``staging`` the content of OUT. Entries of the previous OUT for which ``keep(name)``
    is true (files a run does not write) are copied into ``staging`` first. Raises PublishError
    (OUT unchanged) when that copy or the swap fails."""
    try:
        if out.is_dir():
            for entry in out.iterdir():
                if keep(entry.name) and not (staging / entry.name).exists():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.copytree(entry, staging / entry.name, symlinks=True)
                    else:
                        shutil.copy2(entry, staging / entry.name, follow_symlinks=False)
            if not _exchange(staging, out):
                old = Path(tempfile.mkdtemp(prefix=_beside(out, "old-"), dir=out.parent))
                os.rename(out, old / "previous")
                os.rename(staging, out)
                shutil.rmtree(old, ignore_errors=True)
                return
            shutil.rmtree(staging, ignore_errors=True)  # it now holds the previous run
        elif out.exists() or out.is_symlink():
            raise PublishError(f"--out {out} exists and is not a directory; nothing was published")
        else:
            os.rename(staging, out)
    except OSError as exc:
        discard(staging)
        raise PublishError(f"could not publish the run into {out} ({exc.strerror or exc}); "
                           f"the previous content of {out} is unchanged") from None

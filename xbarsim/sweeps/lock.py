"""One writer per sweep store: an OS lock (``flock``) on ``<store>.lock``, which dies with its process.

A second sweep into the same store is refused at once, with the running one's pid, and never
touches the store. The kernel drops the lock when its holder exits, even by SIGKILL, so a killed
sweep never leaves a stale lock; the lock file itself (holding the pid, as text) is removed on a
normal exit and is harmless when left behind.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from .journal import StoreError

_RETRY_S = 0.2  # how long a lock held only by a probe (``check_unlocked``) is waited for


class StoreBusyError(StoreError):
    """Another sweep is writing this store."""


def lock_path(store: Path) -> Path:
    """Beside the store's real file (a store named through a link has one lock, whatever the link)."""
    store = Path(os.path.realpath(store))
    return store.with_name(store.name + ".lock")


def check_unlocked(store: Path) -> None:
    """Refuse now if another sweep holds the store's lock; creates nothing."""
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the store's lock file ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # conflicts only with a writer's exclusive lock
    except BlockingIOError:
        raise StoreBusyError(_busy(store, path)) from None
    finally:
        os.close(fd)


class StoreLock:
    """The exclusive lock of one store, held from ``acquire`` to ``release``."""

    def __init__(self, store: Path):
        self.store = store
        self.path = lock_path(store)
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        deadline = time.monotonic() + _RETRY_S
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create the store's lock file ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() > deadline:
                    raise StoreBusyError(_busy(self.store, self.path)) from None
                time.sleep(0.02)
                continue
            if _names(fd, self.path):
                break
            os.close(fd)  # a finishing sweep removed this lock file while we opened it: take the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked, so nobody locks a file about to vanish
        os.close(self._fd)
        self._fd = None


def _names(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd``."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _busy(store: Path, path: Path) -> str:
    try:
        pid, _, host = path.read_text().strip().partition(" ")
    except OSError:
        pid, host = "", ""
    holder = f"pid {pid}" + (f" on {host}" if host else "") if pid else "pid unknown"
    return f"{store}: another sweep is writing this store ({holder}); wait for it to finish, or write to another file"

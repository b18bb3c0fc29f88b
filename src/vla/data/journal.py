"""Crash-safe appends to one HDF5 file: a rollback journal under an advisory file lock.

Why: HDF5 rewrites its own metadata (superblock, group indices, attributes) in place when objects are
added, so a process killed while appending an episode can leave a file whose *earlier* episodes are
unreadable. We open the file through h5py's file-object driver with `JournaledFile`, which copies the
original bytes of every region it is about to overwrite into `<file>.journal` (flushed and fsynced
first), like SQLite's rollback journal. Bytes appended past the old end need no copy: rollback truncates
them. Deleting the journal after the data is fsynced is the commit point. Whoever opens the file next
(`recover`) finds a leftover journal, writes the saved bytes back and truncates: the file is then exactly
as it was before the interrupted append, and every earlier episode is intact.

Journal layout: MAGIC, u64 original length, then records (u64 offset, u64 length, u32 crc32, bytes). A
torn last record is ignored: the region it guards was not yet overwritten when the writer died.

Locking: writers hold an exclusive `flock` on the data file while appending; readers hold a shared one
while they open or read, so a reader never sees a half-written episode. (HDF5's own locking is turned off
in our readers because it would conflict with these locks on the same file.)
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

MAGIC = b"VLAJRNL1"
_HEADER = struct.Struct("<8sQ")
_RECORD = struct.Struct("<QQI")


def journal_path(path: Path) -> Path:
    """Returns where the rollback journal of data file `path` lives."""
    return path.with_name(path.name + ".journal")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


LOCK_TIMEOUT_S = 120.0


@contextlib.contextmanager
def file_lock(path: Path, *, exclusive: bool, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Holds an advisory flock on `path` (exclusive for writers, shared for readers) for the block.

    Raises:
        TimeoutError: another process kept a conflicting lock for `timeout` seconds (e.g. a program that
            opened the file with HDF5's own locking and keeps it open while we want to append).
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{path}: another process has held the file locked for {timeout:.0f} s; "
                        f"{'appending' if exclusive else 'reading'} needs it (close other programs using it)"
                    ) from None
                # Short polls: readers release the lock between episode reads, and a writer must be
                # able to slip into those gaps (a 10 ms poll starved behind a busy reader).
                time.sleep(0.0005)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def recover(path: Path) -> bool:
    """Rolls back an interrupted append to `path`, if its journal exists. Call with the exclusive lock.

    Returns:
        True if a rollback happened.
    """
    jpath = journal_path(path)
    if not jpath.exists():
        return False
    blob = jpath.read_bytes()
    if len(blob) >= _HEADER.size:
        magic, original_len = _HEADER.unpack_from(blob, 0)
        if magic != MAGIC:
            raise ValueError(f"{jpath}: not a vla journal (bad magic); move it away to open {path}")
        records: list[tuple[int, bytes]] = []
        pos = _HEADER.size
        while pos + _RECORD.size <= len(blob):
            offset, length, crc = _RECORD.unpack_from(blob, pos)
            data = blob[pos + _RECORD.size : pos + _RECORD.size + length]
            if len(data) != length or zlib.crc32(data) != crc:
                break  # torn tail record: its region was never overwritten
            records.append((offset, data))
            pos += _RECORD.size + length
        with open(path, "r+b") as f:
            for offset, data in reversed(records):
                f.seek(offset)
                f.write(data)
            f.truncate(original_len)
            f.flush()
            os.fsync(f.fileno())
    # A journal shorter than its header means the writer died before touching the data file.
    jpath.unlink()
    _fsync_dir(path)
    return True


class JournaledFile(io.RawIOBase):
    """A read/write file object for h5py's `fileobj` driver that journals every in-place overwrite.

    Use as: `jf = JournaledFile(path)`, `h5py.File(jf, "r+")`, write, close the h5py file, then
    `jf.commit()`. If the process dies before `commit`, `recover(path)` restores the old contents.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._path = Path(path)
        self._file = open(self._path, "r+b")  # noqa: SIM115 - lives as long as this object
        self._original_len = os.fstat(self._file.fileno()).st_size
        self._saved: list[tuple[int, int]] = []  # sorted, disjoint [start, end) regions already journaled
        self._jpath = journal_path(self._path)
        self._journal = open(self._jpath, "wb")  # noqa: SIM115
        self._journal.write(_HEADER.pack(MAGIC, self._original_len))
        self._sync_journal()
        _fsync_dir(self._path)

    def _sync_journal(self) -> None:
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def _unsaved(self, start: int, end: int) -> list[tuple[int, int]]:
        """Returns the parts of [start, end) not journaled yet."""
        parts = []
        cur = start
        for s, e in self._saved:
            if e <= cur:
                continue
            if s >= end:
                break
            if s > cur:
                parts.append((cur, s))
            cur = max(cur, e)
            if cur >= end:
                break
        if cur < end:
            parts.append((cur, end))
        return parts

    def _protect(self, start: int, end: int) -> None:
        """Journals the original bytes of [start, end) that lie inside the original file."""
        end = min(end, self._original_len)
        if start >= end:
            return
        parts = self._unsaved(start, end)
        if not parts:
            return
        here = self._file.tell()
        for s, e in parts:
            self._file.seek(s)
            data = self._file.read(e - s)
            self._journal.write(_RECORD.pack(s, len(data), zlib.crc32(data)) + data)
            self._saved.append((s, e))
        self._saved.sort()
        self._file.seek(here)
        # The saved bytes must be durable before the data file's copy can change.
        self._sync_journal()

    # --- the io interface h5py's fileobj driver uses -------------------------------------------------
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        return self._file.readinto(buffer)

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._file.tell()
        self._protect(start, start + len(memoryview(data).cast("B")))
        return self._file.write(data)

    def truncate(self, size: int | None = None) -> int:
        size = self._file.tell() if size is None else size
        self._protect(size, self._original_len)
        return self._file.truncate(size)

    def flush(self) -> None:
        self._file.flush()

    def commit(self) -> None:
        """Makes the appended data durable, then deletes the journal (the commit point)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._journal.close()
        self._jpath.unlink()
        _fsync_dir(self._path)
        self._file.close()

    def abort(self) -> None:
        """Undoes everything written through this object (used when the append itself raised)."""
        self._file.close()
        self._journal.close()
        recover(self._path)

    def close(self) -> None:
        # h5py closes its file object; the real close happens in commit()/abort().
        if not self._file.closed:
            self._file.flush()

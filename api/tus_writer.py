"""The file side of one PATCH /uploads/{id}: append, record the offset, fsync now and then.

Sync: the route hands it a buffer at a time through the thread pool. The file is opened
unbuffered, so what write() returned is in the kernel's page cache and a HEAD after a dropped
connection reports no byte that is not in the file; fsync every FSYNC_BYTES bounds what a
power cut could lose (the record would then be repaired down to the file's size).
"""

from __future__ import annotations

import errno
import hashlib
import os
from typing import Any

from api.tus import LockLost, Upload, Uploads

FSYNC_BYTES = 16 * 2**20
# No room: the disk is full, the tenant's filesystem quota is, or the process may not grow a
# file further (RLIMIT_FSIZE: EFBIG; Python ignores SIGXFSZ, so the write fails instead).
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class DiskFull(Exception):
    """No room on the artifact disk; the bytes before the failed write are kept (the file is
    cut back to the last byte write() accepted, and the offset is recorded as that)."""


class Writer:
    """Appends to an upload whose lock this writer holds; commits each buffer's offset
    unless a checksum must be verified first (then nothing is recorded until finish())."""

    def __init__(self, uploads: Uploads, up: Upload, token: str, checksum: str | None) -> None:
        self.uploads = uploads
        self.up = up
        self.token = token
        self.start = up.offset
        self.offset = up.offset
        self.hasher: Any = hashlib.new(checksum) if checksum else None
        self._unsynced = 0
        self.cut = False  # the client went away before the body's end (set by the route)
        self.fh = open(uploads.path(up.id), "r+b", buffering=0)  # noqa: SIM115 (closed in close)
        self.fh.truncate(up.offset)  # the record was settled to the file's size: a no-op
        self.fh.seek(up.offset)

    def write(self, data: bytes | bytearray) -> None:
        """Append data; LockLost when the upload was terminated or taken over meanwhile."""
        view = memoryview(data)
        try:
            while view:
                n = self.fh.write(view)
                assert n is not None  # unbuffered file: a short write returns the count
                self.offset += n
                self._unsynced += n
                view = view[n:]
            if self.hasher is not None:
                self.hasher.update(data)
            if self._unsynced >= FSYNC_BYTES:
                self._fsync()
        except OSError as e:
            self.fh.truncate(self.offset)
            self._full(e)
            raise
        held = None if self.hasher is not None else self.offset
        self._commit(held)

    def finish(self) -> None:
        """fsync and record the offset (after a checksum matched, or for a plain PATCH)."""
        try:
            self._fsync()
        except OSError as e:
            self._full(e)
            raise
        self._commit(self.offset)

    def _fsync(self) -> None:
        os.fsync(self.fh.fileno())
        self._unsynced = 0

    def _full(self, e: OSError) -> None:
        """DiskFull for no room, after recording what is really on disk: this PATCH's bytes
        up to the failed write, or none of them when a checksum can no longer be checked."""
        if e.errno not in FULL:
            return
        if self.hasher is not None:
            self.rollback()
        else:
            try:
                self._commit(self.offset)
            except LockLost:
                pass  # the next HEAD repairs the record to the file's size
        raise DiskFull(str(e)) from e

    def _commit(self, offset: int | None) -> None:
        until = self.uploads.commit(self.up.id, self.token, offset, self.up.length)
        if until is not None:
            self.up.expires_at = until  # finished: kept another expiry period

    def digest(self) -> bytes:
        return self.hasher.digest() if self.hasher is not None else b""

    def rollback(self) -> None:
        """Drop every byte of this PATCH (too long, checksum mismatch, or a checksummed
        body cut short): the upload is back at the offset the PATCH started from."""
        self.fh.truncate(self.start)
        self.offset = self.start
        try:
            self.uploads.commit(self.up.id, self.token, self.start, self.up.length)
        except LockLost:
            pass

    def close(self) -> None:
        self.fh.close()

"""Write-ahead log: what a 200 / OK acknowledges is on disk first.

Records are the decoded request bodies (canonical protobuf), so replay runs the
same extraction code as live traffic. Layout: ``<dir>/<segment:016d>.wal``, each
record ``[u32 length][u32 crc32][u8 signal][u64 received_ns][payload]``.
When the request came with a tenant label, the signal byte has ``TENANT_FLAG``
set and the payload starts with ``[u16 length][tenant, UTF-8]`` (covered by the
checksum); records without the flag (the first format) replay unchanged.

Group commit: handlers append to an in-memory buffer and await a future; one
writer thread writes the buffer and fsyncs once per batch, then resolves every
future of that batch. Exactly-once with the store: the flusher calls
``rotate()`` and takes the aggregator's slots in one step on the event loop,
writes them with ``segment`` as the store's WAL marker in the same transaction,
and only then ``drop_through(segment)``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<IIBQ")
RECORD_OVERHEAD = _HEADER.size   # bytes of a record beyond its payload
_IOV_MAX = 512
SIGNAL_TRACES, SIGNAL_METRICS = 1, 2
SIGNAL_PROM_V1, SIGNAL_PROM_V2 = 3, 4   # Prometheus remote write 1.0 / 2.0 (decompressed protobuf)
_TENANT = struct.Struct("<H")
TENANT_FLAG = 0x80   # in the signal byte: the payload starts with the tenant


@dataclass(frozen=True)
class Record:
    segment: int
    signal: int
    received_ns: int
    payload: bytes
    tenant: str | None = None   # the tenant label the request was received with


def _tenant_prefix(tenant: str | None) -> bytes:
    """``[u16 length][tenant]`` written before the payload; empty without a tenant."""
    if tenant is None:
        return b""
    t = tenant.encode()
    if len(t) > 0xFFFF:
        raise ValueError("tenant name is longer than 65535 bytes")
    return _TENANT.pack(len(t)) + t


class WriteAheadLog:
    def __init__(self, directory: str | os.PathLike, max_wait_s: float = 0.002):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_wait_s = max_wait_s
        existing = self.segments()
        self.segment = (existing[-1] + 1) if existing else 1
        # bytes of every segment on disk: what is acknowledged but not yet in the store
        self.size_bytes = sum(self._path(seg).stat().st_size for seg in existing)
        self._file = open(self._path(self.segment), "ab", buffering=0)
        self._cond = threading.Condition()   # guards the buffer
        self._io = threading.Lock()           # guards the file
        self._buf: list[tuple[int, int, bytes, bytes]] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._closed = False
        self.torn_records = 0
        self.bytes_written = 0
        self.syncs = 0
        self._thread = threading.Thread(target=self._writer, name="wal-writer", daemon=True)
        self._thread.start()

    def _path(self, seg: int) -> Path:
        return self.dir / f"{seg:016d}.wal"

    def segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.dir.glob("*.wal") if p.stem.isdigit())

    # -- writing --------------------------------------------------------------
    def append(self, signal: int, payload: bytes, received_ns: int, tenant: str | None = None) -> asyncio.Future:
        """Queue one record; the returned future resolves once it is on disk.
        Call from the event loop thread."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        prefix = _tenant_prefix(tenant)
        with self._cond:
            if self._closed:
                raise RuntimeError("write-ahead log is closed")
            self._buf.append((signal, received_ns, payload, prefix))  # framed and checksummed by the writer thread
            self._waiters.append((loop, fut))
            self._cond.notify()
        return fut

    def append_sync(self, signal: int, payload: bytes, received_ns: int, tenant: str | None = None) -> None:
        """Append and fsync from a non-async caller (tests, tools)."""
        with self._io:
            err = self._write([(signal, received_ns, payload, _tenant_prefix(tenant))])
        if err:
            raise err

    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._buf and not self._closed:
                    self._cond.wait()
                if not self._buf and self._closed:
                    return
            if self.max_wait_s:  # let a few more requests join this group commit
                threading.Event().wait(self.max_wait_s)
            with self._io:
                self._commit_buffer()

    def _commit_buffer(self) -> None:
        """Write and fsync what is buffered, then resolve its waiters. Called with
        the file lock held from taking the buffer to fsync, so rotate() can never
        move a record taken here into the next segment."""
        with self._cond:
            buf, self._buf = self._buf, []
            waiters, self._waiters = self._waiters, []
        err = self._write(buf)
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut, err)

    def _write(self, buf: list[tuple[int, int, bytes, bytes]]) -> OSError | None:
        """Frame, checksum and write records, then fsync once. Runs off the event
        loop; crc32 and writev release the GIL for large buffers."""
        if not buf:
            return None
        try:
            parts: list[bytes] = []
            for signal, received_ns, payload, prefix in buf:
                if prefix:   # tenant record: the flag in the signal byte, the prefix under the checksum
                    crc = zlib.crc32(payload, zlib.crc32(prefix)) & 0xFFFFFFFF
                    parts.append(_HEADER.pack(len(prefix) + len(payload), crc, signal | TENANT_FLAG, received_ns))
                    parts.append(prefix)
                else:
                    parts.append(_HEADER.pack(len(payload), zlib.crc32(payload) & 0xFFFFFFFF, signal, received_ns))
                parts.append(payload)
            fd = self._file.fileno()
            for i in range(0, len(parts), _IOV_MAX):
                chunk = parts[i:i + _IOV_MAX]
                total, done = sum(len(p) for p in chunk), os.writev(fd, chunk)
                if done < total:  # short write: finish it plainly
                    rest = b"".join(chunk)[done:]
                    while rest:
                        rest = rest[os.write(fd, rest):]
                self.bytes_written += total
                self.size_bytes += total
            os.fsync(fd)
            self.syncs += 1
            return None
        except OSError as e:  # disk full, I/O error: those requests fail, they are not acknowledged
            log.error("write-ahead log write failed: %s", e)
            return e

    def rotate(self) -> int:
        """Start a new segment; returns the number of the one just closed. Every
        record appended before this call is in that segment or an earlier one."""
        with self._io:
            self._commit_buffer()  # records appended before this call go to the closing segment
            closed = self.segment
            self._file.close()
            self.segment += 1
            self._file = open(self._path(self.segment), "ab", buffering=0)
            return closed

    def drop_through(self, segment: int) -> int:
        """Delete segments up to and including ``segment`` (their data is in the store)."""
        n = 0
        for seg in self.segments():
            if seg <= segment and seg != self.segment:
                path = self._path(seg)
                try:
                    size = path.stat().st_size
                    path.unlink()
                except FileNotFoundError:
                    continue
                self.size_bytes = max(0, self.size_bytes - size)
                n += 1
        return n

    # -- reading --------------------------------------------------------------
    def replay_size(self, after: int) -> tuple[int, int]:
        """(segments, bytes) that ``replay(after)`` will read."""
        segs = [s for s in self.segments() if s > after and s != self.segment]
        return len(segs), sum(self._path(s).stat().st_size for s in segs)

    def replay(self, after: int) -> Iterator[Record]:
        """Records of segments newer than ``after``, in order. A torn or corrupt
        tail (a crash mid-write) ends that segment's replay and is counted."""
        for seg in self.segments():
            if seg <= after or seg == self.segment:
                continue
            data = self._path(seg).read_bytes()
            pos = 0
            while pos < len(data):
                if pos + _HEADER.size > len(data):
                    self.torn_records += 1
                    break
                length, crc, signal, recv = _HEADER.unpack_from(data, pos)
                start, end = pos + _HEADER.size, pos + _HEADER.size + length
                if end > len(data) or zlib.crc32(data[start:end]) & 0xFFFFFFFF != crc:
                    self.torn_records += 1
                    log.warning("write-ahead log segment %d: torn or corrupt record at byte %d skipped", seg, pos)
                    break
                rec = _parse(seg, signal, recv, data[start:end])
                if rec is None:
                    self.torn_records += 1
                    log.warning("write-ahead log segment %d: malformed tenant in record at byte %d skipped", seg, pos)
                else:
                    yield rec
                pos = end

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)
        with self._io:
            self._file.close()


def _parse(seg: int, signal: int, recv: int, body: bytes) -> Record | None:
    if not signal & TENANT_FLAG:
        return Record(seg, signal, recv, body)
    if len(body) < _TENANT.size:
        return None
    (n,) = _TENANT.unpack_from(body)
    end = _TENANT.size + n
    if end > len(body):
        return None
    try:
        tenant = body[_TENANT.size:end].decode()
    except UnicodeDecodeError:
        return None
    return Record(seg, signal & ~TENANT_FLAG, recv, body[end:], tenant)


def _resolve(fut: asyncio.Future, err: Exception | None) -> None:
    if fut.done():
        return
    if err is None:
        fut.set_result(None)
    else:
        fut.set_exception(err)

"""Pixels through shared memory between a client and a daemon on the same machine.

Raw ZeroMQ frames copy a layer several times (into the socket, through the kernel, out of
it, into fresh memory); on one machine the floor is two memcpy (the layer there and back).
Here each side keeps a small pool of anonymous memory files (Linux `memfd_create`), mapped
once: the sender copies the pixels into a free one and sends only a reference in the
raster's description (its pid, the fd number and a random token). The receiver first reads
the link `/proc/<pid>/fd/<fd>` and opens nothing but a sfumato memory file of that name (so
a FIFO, socket, device or directory is refused before any open could block), opens it
non-blocking, checks that what it opened is a same-user regular memory file with exactly
that token and size, of ordinary pages (not hugetlb), sealed against resizing (so a reader
can never be hit by SIGBUS), and maps it. Any OS error on the way is a refusal of that
reference only.

Nothing ever appears in /dev/shm: a memory file has no name in any filesystem, and the kernel
frees it when the last fd and mapping go, so a crash of either side leaves nothing behind.
The reference is built from two integers and a hex token, never used as a path as sent.

Reuse rules, so no one overwrites pixels still being read: a client reuses a request's file
once the reply came (the daemon has read what it needed), except for `submit`, whose job may
read its input later: those files are retired (closed; the daemon's mapping keeps them alive
until the job ends). A daemon reuses a reply's file once the client says, in a later
message's header, that every view of it is gone; one not released within KEEP_S is retired.
A reply file is released only by the client it was sent to, and reused only for replies to
that same client, so no client can ever be handed a view of another's result.

Where this cannot work (another machine, another pid namespace, no memfd), the first attempt
fails cleanly and raw frames carry the pixels instead. With a signing key the reference is
signed like the rest of the header; the pixels themselves are in memory only processes of
the same user can open. Standard library only.
"""

from __future__ import annotations

import ctypes
import fcntl
import mmap
import os
import re
import secrets
import stat
import time
import weakref
from collections import OrderedDict, deque
from typing import Any, Protocol

from .errors import SfumatoError
from .protocol import ErrorCode
from .raster import Buffer, Raster

HEADER_READS = "shm"  # header: the sender can read pixels from shared memory
HEADER_RELEASE = "shm_release"  # header: tokens of the receiver's files the sender is done with
HEADER_RETIRED = "shm_retired"  # header: tokens of the sender's files it closed for good
MIN_BYTES = 64 << 10  # smaller rasters go as frames: a memory file costs a few syscalls
KEEP_S = 60.0  # a reply's file not released by its client within this is retired
FREE_KEEP_S = 10.0  # a daemon's free reply file not reused within this is closed
POOL_BYTES = 1 << 30  # free files kept for reuse beyond this are closed, oldest first
MAX_RELEASES = 256
MAX_MAPPINGS = 256  # cached mappings of peers' files in all (each holds an fd)
MAX_MAPPINGS_PER_PEER = 32  # ... and per sending process: a pool is a few files, not 1,000
_NAME_PREFIX = "sfumato-"
_TOKEN = re.compile(r"[0-9a-f]{32}")
_SEALS = ("F_SEAL_SEAL", "F_SEAL_SHRINK", "F_SEAL_GROW")  # fixed size: no SIGBUS for readers
_MAX_SIZE = 1 << 40
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # a pool file's pages mapped once, up front


class SharedPixelsError(SfumatoError):
    """A shared-memory reference that cannot be (or must not be) opened."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_MESSAGE) -> None:
        super().__init__(code, message)


def available() -> bool:
    """Whether this process can share pixels this way (Linux with memfd and /proc)."""
    return (
        hasattr(os, "memfd_create")
        and all(hasattr(fcntl, name) for name in (*_SEALS, "F_ADD_SEALS", "F_GET_SEALS"))
        and os.path.isdir(f"/proc/{os.getpid()}/fd")
    )


def is_local_endpoint(endpoint: str) -> bool:
    """Whether a ZeroMQ endpoint can only reach this machine (ipc, or loopback TCP)."""
    if endpoint.startswith("ipc://"):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def memory_file_name(pid: int, token: str) -> str:
    """The name a memory file carries (seen in /proc/PID/fd and /proc/PID/maps)."""
    return f"{_NAME_PREFIX}{pid}-{token}"


def _seal_bits() -> int:
    bits = 0
    for name in _SEALS:
        bits |= getattr(fcntl, name)
    return bits


class Segment:
    """A memory file this process made, of a fixed size, mapped read-write once."""

    def __init__(self, size: int, owner: bytes | None = None) -> None:
        self.size = size
        self.owner = owner  # the only peer this file's pixels may go to (daemon side)
        self.token = secrets.token_hex(16)
        self.busy = False
        self.since = time.monotonic()
        self.fd = os.memfd_create(
            memory_file_name(os.getpid(), self.token), os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        )
        try:
            os.ftruncate(self.fd, size)
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, _seal_bits())
            self._map = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED | _POPULATE)
        except BaseException:
            os.close(self.fd)
            raise

    def fill(self, data: Buffer, pooled: bool = True) -> dict[str, Any]:
        """Copy `data` in (one memcpy) and return the reference that names it; `pooled`
        tells the reader the file will come again, so its mapping is worth keeping."""
        self._map[: self.size] = memoryview(data).cast("B")
        return {"pid": os.getpid(), "fd": self.fd, "token": self.token, "size": self.size,
                "pooled": pooled}

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)


class SegmentPool:
    """This process's memory files: busy ones (a peer may still read them) and free ones
    kept for the next raster of the same size, up to `max_bytes` of free ones."""

    def __init__(self, max_bytes: int = POOL_BYTES) -> None:
        self.max_bytes = max_bytes
        self._segments: dict[str, Segment] = {}
        self.retired: deque[str] = deque(maxlen=4 * MAX_RELEASES)  # for a peer to forget

    def take(self, size: int, owner: bytes | None = None) -> Segment:
        """A free file of `size` that went to `owner` before, or a new one (OSError when the
        system has no memory file to give)."""
        for segment in self._segments.values():
            if not segment.busy and segment.size == size and segment.owner == owner:
                break
        else:
            segment = Segment(size, owner)
            self._segments[segment.token] = segment
        segment.busy = True
        segment.since = time.monotonic()
        self._trim()
        return segment

    def release(self, token: str, owner: bytes | None = None) -> None:
        """Its peer is done with it: free for reuse. Only the peer it went to can free it."""
        segment = self._segments.get(token)
        if segment is not None and segment.owner == owner:
            segment.busy = False
            segment.since = time.monotonic()
            self._trim()

    def retire(self, token: str) -> None:
        """Never reuse it: close it (a peer's mapping keeps the memory until it lets go)."""
        segment = self._segments.pop(token, None)
        if segment is not None:
            segment.close()
            self.retired.append(token)

    def retire_busy_since(self, moment: float) -> None:
        for token, segment in list(self._segments.items()):
            if segment.busy and segment.since < moment:
                self.retire(token)

    def retire_free_since(self, moment: float) -> None:
        for token, segment in list(self._segments.items()):
            if not segment.busy and segment.since < moment:
                self.retire(token)

    def busy_count(self) -> int:
        return sum(segment.busy for segment in self._segments.values())

    def busy_bytes(self, owner: bytes | None) -> int:
        return sum(s.size for s in self._segments.values() if s.busy and s.owner == owner)

    def belongs_to(self, token: str, owner: bytes | None) -> bool:
        segment = self._segments.get(token)
        return segment is not None and segment.owner == owner

    def tokens(self) -> set[str]:
        return set(self._segments)

    def close(self) -> None:
        for token in list(self._segments):
            self.retire(token)

    def _trim(self) -> None:
        free = sorted((s for s in self._segments.values() if not s.busy), key=lambda s: s.since)
        total = sum(s.size for s in free)
        for segment in free:
            if total <= self.max_bytes:
                break
            total -= segment.size
            self.retire(segment.token)


class MappingCache:
    """Read-only mappings of a peer's pooled files, kept for the next time they come (the
    pages stay mapped: no page faults on reuse). Mappings of processes that have ended are
    dropped, and the oldest beyond `max_bytes`, `max_count`, or `max_per_pid` of one sender:
    each mapping holds a file descriptor, so a sender of many tiny files cannot use up the
    reader's."""

    def __init__(self, max_bytes: int = POOL_BYTES, writable: bool = False,
                 max_count: int = MAX_MAPPINGS, max_per_pid: int = MAX_MAPPINGS_PER_PEER) -> None:
        self.max_bytes = max_bytes
        self.writable = writable
        self.max_count = max_count
        self.max_per_pid = max_per_pid
        self._maps: OrderedDict[tuple[int, str], mmap.mmap] = OrderedDict()

    def get(self, ref: Any, size: int) -> mmap.mmap:
        pid, _, token = _parse_reference(ref, size)
        found = self._maps.get((pid, token))
        if found is not None and len(found) == size:
            self._maps.move_to_end((pid, token))
            return found
        mine = [key for key in self._maps if key[0] == pid]
        for key in mine[: max(0, len(mine) - self.max_per_pid + 1)]:
            del self._maps[key]  # this sender's oldest (views still in use keep theirs)
        mapping = open_reference(ref, size, self.writable)
        self._maps[(pid, token)] = mapping
        total = sum(len(m) for m in self._maps.values())
        while (total > self.max_bytes or len(self._maps) > self.max_count) and \
                len(self._maps) > 1:
            total -= len(self._maps.popitem(last=False)[1])
        return mapping

    def tokens(self) -> set[str]:
        return {token for _, token in self._maps}

    def forget(self, token: str) -> None:
        """Drop the mapping of a file its writer closed for good (views keep theirs)."""
        for key in [key for key in self._maps if key[1] == token]:
            del self._maps[key]

    def sweep(self) -> None:
        """Forget the mappings of processes that have ended, so their memory can go."""
        for pid in {pid for pid, _ in self._maps}:
            if not _alive(pid):
                for key in [key for key in self._maps if key[0] == pid]:
                    del self._maps[key]

    def clear(self) -> None:
        self._maps.clear()


def header_tokens(header: dict[str, Any], key: str) -> list[str]:
    """The tokens a peer listed under `key` (releases, retirements): strings only, at most
    MAX_RELEASES; anything else a peer sends there is ignored."""
    value = header.get(key)
    if not isinstance(value, list):
        return []
    return [token for token in value[:MAX_RELEASES] if isinstance(token, str)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_reference(ref: Any, size: int, writable: bool = False) -> mmap.mmap:
    """A mapping of the memory file that `ref` (from the wire) names, which must hold
    exactly `size` bytes; read-only unless `writable` (needed only to wrap it in a ctypes
    array, see ClientPixels.open). Every way the reference can be wrong raises
    SharedPixelsError. Pages are mapped as they are first read."""
    pid, fd, token = _parse_reference(ref, size)
    link = f"/proc/{pid}/fd/{fd}"  # a link the kernel resolves to the open file itself
    expected = f"/memfd:{memory_file_name(pid, token)} (deleted)"
    try:
        named = os.readlink(link)
    except OSError as exc:
        raise SharedPixelsError(f"cannot see the sender's shared memory ({exc.strerror})") \
            from None
    if named != expected:  # a FIFO, socket, device, directory, file: never opened
        raise SharedPixelsError("the shared-memory reference does not name a sfumato memory file")
    mode = os.O_RDWR if writable else os.O_RDONLY
    try:
        # non-blocking: should the fd change into a FIFO after the check, open cannot hang
        handle = os.open(link, mode | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise SharedPixelsError(
            f"cannot open the sender's shared memory ({exc.strerror})"
        ) from None
    try:
        _check_opened(handle, expected, size)
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(handle, size, flags=mmap.MAP_SHARED, prot=prot)
    except OSError as exc:  # e.g. out of memory or of file descriptors: refuse this one
        raise SharedPixelsError(f"cannot map the sender's shared memory ({exc.strerror})") \
            from None
    finally:
        os.close(handle)  # the mapping keeps the file alive


def _parse_reference(ref: Any, size: int) -> tuple[int, int, str]:
    if not isinstance(ref, dict):
        raise SharedPixelsError("shared-memory reference is not an object")
    pid, fd, token, declared = ref.get("pid"), ref.get("fd"), ref.get("token"), ref.get("size")
    for name, value in (("pid", pid), ("fd", fd), ("size", declared)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SharedPixelsError(f"shared-memory reference has a bad {name}: {value!r}")
    if pid == 0 or not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise SharedPixelsError("shared-memory reference has a bad pid or token")
    if declared != size or not 0 < size <= _MAX_SIZE:
        raise SharedPixelsError(
            f"shared memory holds {declared} bytes but the raster's shape needs {size}"
        )
    return int(pid), int(fd), token  # type: ignore[arg-type]


def _check_opened(handle: int, expected: str, size: int) -> None:
    # Check again what was actually opened: the fd number could have been reused for
    # anything between the first check and the open.
    try:
        target = os.readlink(f"/proc/self/fd/{handle}")
    except OSError as exc:
        raise SharedPixelsError(f"shared memory cannot be inspected ({exc.strerror})") from None
    if target != expected:
        raise SharedPixelsError("the shared-memory reference does not name a sfumato memory file")
    try:
        info = os.fstat(handle)
        seals = fcntl.fcntl(handle, fcntl.F_GET_SEALS)
    except OSError as exc:
        raise SharedPixelsError(f"shared memory cannot be inspected ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise SharedPixelsError("shared memory belongs to another user")
    if info.st_size != size:
        raise SharedPixelsError(f"shared memory holds {info.st_size} bytes, expected {size}")
    if info.st_blksize > mmap.PAGESIZE:  # hugetlb pages: mapping them may fail or pin RAM
        raise SharedPixelsError("shared memory of huge pages is not accepted")
    needed = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
    if seals & needed != needed:
        raise SharedPixelsError("shared memory is not sealed against resizing")


class ReadViews:
    """A peer's pooled files, read here: their mappings are kept (no page faults on reuse),
    and each raster read gets its own ctypes array over the mapping. Every view handed out,
    or later derived (a numpy array, a cast), holds that array: when it is gone, no reader is
    left, the file's token is noted as done, and the writer may reuse the file once told."""

    def __init__(self) -> None:
        self.mappings = MappingCache(writable=True)  # ctypes arrays need a writable buffer
        self._done: list[str] = []

    def open(self, ref: Any, size: int) -> memoryview:
        mapping = self.mappings.get(ref, size)
        holder = (ctypes.c_char * size).from_buffer(mapping)
        weakref.finalize(holder, self._let_go, ref["token"])
        return memoryview(holder).cast("B").toreadonly()

    def take_done(self) -> list[str]:
        """Tokens of files no longer read here, at most MAX_RELEASES, for the next header."""
        done, self._done = self._done[:MAX_RELEASES], self._done[MAX_RELEASES:]
        return done

    def pending(self) -> bool:
        return bool(self._done)

    def forget_done(self) -> None:
        self._done.clear()

    def _let_go(self, token: str) -> None:
        self._done.append(token)  # self._done is replaced when taken: never bind its append


class ClientPixels:
    """The client's side: request pixels out through its pool, reply pixels in.

    `confirmed` turns true once a round trip through shared memory has worked with this
    daemon; until then the client probes, and falls back to frames if the probe fails."""

    def __init__(self, min_bytes: int = MIN_BYTES) -> None:
        self.min_bytes = min_bytes
        self.confirmed = False
        self.pool = SegmentPool()
        self.replies = ReadViews()  # the daemon's files, read here
        self.reuse = True  # set per request: False for a job's input (read later, once)
        self._sent: list[str] = []

    def place(self, raster: Raster) -> dict[str, Any] | None:
        if raster.nbytes < self.min_bytes:
            return None
        try:
            segment = self.pool.take(raster.nbytes)
        except OSError:
            return None  # no memory file to be had now: this raster goes as a frame
        self._sent.append(segment.token)
        return segment.fill(raster.data, pooled=self.reuse)

    def header_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {HEADER_READS: True}
        done = self.replies.take_done()
        if done:
            fields[HEADER_RELEASE] = done
        return fields

    def open(self, ref: Any, size: int) -> memoryview:
        self.replies.mappings.sweep()  # a daemon that has ended: let its memory go
        return self.replies.open(ref, size)

    def note_header(self, header: dict[str, Any]) -> None:
        for token in header_tokens(header, HEADER_RETIRED):
            self.replies.mappings.forget(token)  # the daemon closed it for good

    def finish_sent(self, reused: bool) -> None:
        """The request's files after its reply: free for reuse when the daemon has read all it
        will (`reused`), else retired (a job may still read them; no reply may mean never)."""
        for token in self._sent:
            if reused:
                self.pool.release(token)
            else:
                self.pool.retire(token)
        self._sent.clear()

    def close(self) -> None:
        self._sent.clear()
        self.pool.close()
        self.replies.mappings.clear()


class DaemonPixels:
    """The daemon's side: request pixels in from clients' files, reply pixels out through
    its pool, each file busy until its client says every view of it is gone."""

    def __init__(self, min_bytes: int = MIN_BYTES, keep_s: float = KEEP_S,
                 max_peers: int = 4096) -> None:
        self.min_bytes = min_bytes
        self.keep_s = keep_s
        self.pool = SegmentPool()
        self.mappings = MappingCache()
        self._peers: OrderedDict[bytes, None] = OrderedDict()
        self._max_peers = max_peers
        self._last_reads = False
        self.placed: list[str] = []  # tokens of the files the last encode filled
        self.released: list[str] = []  # tokens the last decoded message let go of
        # which client each reply file went to, and the closed ones each is yet to be told
        # of (so it can drop its mapping): replies to a client carry its list
        self._replying_to: bytes | None = None
        self._receiving_from: bytes | None = None  # whose message is being decoded
        self._reader: dict[str, bytes] = {}
        self._retired_for: OrderedDict[bytes, list[str]] = OrderedDict()

    # --- codec hooks ----------------------------------------------------------------------

    def place(self, raster: Raster) -> dict[str, Any] | None:
        self.expire()
        if raster.nbytes < self.min_bytes:
            return None
        try:  # a reply file is only ever reused for the client it went to
            segment = self.pool.take(raster.nbytes, self._replying_to)
        except OSError:
            return None  # no memory file to be had now: this reply goes as frames
        self.placed.append(segment.token)
        if self._replying_to is not None:
            self._reader[segment.token] = self._replying_to
        self._sort_retired()
        return segment.fill(raster.data)

    def header_fields(self) -> dict[str, Any]:
        if self._replying_to is None or self._replying_to not in self._retired_for:
            return {}
        retired = self._retired_for.pop(self._replying_to)
        if len(retired) > MAX_RELEASES:
            self._retired_for[self._replying_to] = retired[MAX_RELEASES:]
        return {HEADER_RETIRED: retired[:MAX_RELEASES]}

    def open(self, ref: Any, size: int) -> memoryview:
        # a client's pooled file comes again with its next request: keep it mapped; a job's
        # input is read once, its pages mapped as they are read
        if isinstance(ref, dict) and ref.get("pooled") is True:
            return memoryview(self.mappings.get(ref, size))
        return memoryview(open_reference(ref, size))

    def note_header(self, header: dict[str, Any]) -> None:
        self._last_reads = header.get(HEADER_READS) is True
        sender = self._receiving_from
        # only the client a reply file went to can free it (another's release is ignored)
        self.released = [token for token in header_tokens(header, HEADER_RELEASE)
                         if self.pool.belongs_to(token, sender)]
        for token in self.released:
            self.pool.release(token, sender)
        self.expire()
        self.mappings.sweep()

    # --- per client ---------------------------------------------------------------------

    def receiving_from(self, identity: bytes) -> None:
        """Whose message the codec decodes next: its releases count for its files only."""
        self._receiving_from = identity

    def backlog(self, identity: bytes) -> int:
        """Bytes of reply files sent to this client that it has not let go of yet."""
        return self.pool.busy_bytes(identity)

    def note_peer(self, identity: bytes) -> None:
        """Remember whether the client whose message was just decoded reads shared memory."""
        self._peers.pop(identity, None)
        if self._last_reads:
            self._peers[identity] = None
            while len(self._peers) > self._max_peers:
                self._peers.popitem(last=False)

    def for_peer(self, identity: bytes) -> DaemonPixels | None:
        """This carrier for replies to a client that reads shared memory, else None."""
        if identity not in self._peers:
            return None
        self._replying_to = identity
        return self

    def expire(self, now: float | None = None) -> None:
        """Close reply files a client never let go of within `keep_s`, and free ones nobody
        reused within FREE_KEEP_S (each client is told in its next reply and drops its
        mapping, so an idle daemon and its clients hold no pixels)."""
        now = time.monotonic() if now is None else now
        self.pool.retire_busy_since(now - self.keep_s)
        self.pool.retire_free_since(now - FREE_KEEP_S)
        self._sort_retired()

    def _sort_retired(self) -> None:
        while self.pool.retired:
            token = self.pool.retired.popleft()
            reader = self._reader.pop(token, None)
            if reader is None:
                continue
            told = self._retired_for.setdefault(reader, [])
            told.append(token)
            del told[: -4 * MAX_RELEASES]  # a client that never asks again: keep the newest
            self._retired_for.move_to_end(reader)
            while len(self._retired_for) > self._max_peers:
                self._retired_for.popitem(last=False)

    def outstanding(self) -> int:
        return self.pool.busy_count()

    def close(self) -> None:
        self.pool.close()
        self.mappings.clear()


class PixelCarrier(Protocol):
    """What the codec asks of one side's shared-memory pixels."""

    def place(self, raster: Raster) -> dict[str, Any] | None: ...

    def header_fields(self) -> dict[str, Any]: ...

    def open(self, ref: Any, size: int) -> memoryview: ...

    def note_header(self, header: dict[str, Any]) -> None: ...


def daemon_pixels(enabled: bool = True) -> DaemonPixels | None:
    return DaemonPixels() if enabled and available() else None


def client_pixels(endpoint: str) -> ClientPixels | None:
    """A carrier when the daemon is on this machine and this machine can share memory;
    SFUMATO_SHARED_MEMORY=0 turns it off."""
    if os.environ.get("SFUMATO_SHARED_MEMORY", "1") == "0":
        return None
    return ClientPixels() if is_local_endpoint(endpoint) and available() else None

"""A tamper-evident audit log: JSON lines chained with HMAC-SHA256.

Entry ``i`` stores ``seq = i``, ``prev`` (the MAC of entry ``i - 1``, or 64 zeros for
the first) and ``mac = HMAC(key, entry without mac)``. Without the key nobody can
make a valid MAC, so

* a **modified** entry fails its own MAC;
* an **inserted** entry fails its MAC, or (copied from elsewhere) its ``prev``/``seq``;
* a **deleted** entry leaves the next one pointing at a MAC that is not there;
* **reordered** entries break ``prev`` and ``seq`` at the first moved one.

A chain alone cannot see its *end* cut off: the shorter log is still a valid chain.
So every append also rewrites a small signed **anchor** file next to the log
(``<log>.anchor``: the entry count and the last MAC, with their own HMAC).
Truncating the log then disagrees with the anchor, and deleting the anchor is
reported too.

What this does **not** detect: anyone who holds the key (for example an attacker
who owns the server process) can rewrite the whole log and anchor consistently;
an attacker with file access can roll back log *and* anchor together to an older
consistent state. Against those, ship entries or the anchor to a separate
append-only store (a log server, WORM storage) or use forward-secure keys that are
evolved and erased after use.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
>>> log = AuditLog(path, key=bytes(32))
>>> _ = log.append(sub="alice", model="digits", decision="allow", status=200)
>>> _ = log.append(sub="mallory", model="digits", decision="deny", status=403)
>>> verify_log(path, bytes(32))
AuditReport(ok=True, entries=2, first_bad=None, reason='2 entries, chain and anchor verify')
>>> lines = path.read_text().splitlines()
>>> _ = path.write_text(lines[0] + "\\n" + lines[1].replace("deny", "allow") + "\\n")
>>> verify_log(path, bytes(32)).first_bad
2
"""
import hashlib
import hmac
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InvalidParameterError
from ..records import OneRowFrame
from .keys import check_key

try:
    import fcntl  # POSIX: a lock that also excludes other processes
except ImportError:  # Windows: only threads of one process are serialised
    fcntl = None

GENESIS = "0" * 64
RESERVED = ("seq", "prev", "mac")


def canonical(entry):
    """The bytes a MAC covers: sorted keys, no spaces, no NaN (one entry, one encoding)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def entry_mac(key, entry):
    """HMAC-SHA256 over the entry without its ``mac`` field."""
    body = {k: v for k, v in entry.items() if k != "mac"}
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


ANCHOR_BYTES = 256  # the anchor's fixed size: its JSON is about 150 bytes


def anchor_path(path):
    return Path(str(path) + ".anchor")


class AuditLog:
    """Append-only JSONL audit log with an HMAC hash chain; safe across threads and processes.

    Parameters
    ----------
    path : path
        The log file (created if needed). Its anchor is ``<path>.anchor``.
    key : bytes
        At least 32 bytes; keep it apart from the log (e.g. derived from the server secret).
    fsync : bool, default=False
        Force each entry to disk before returning (durable, but a disk flush per request).
    """

    def __init__(self, path, key, fsync=False):
        self.path, self.key, self.fsync = Path(path), check_key(key, "key"), fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # threads of this process
        self._state = None  # (file size, seq, mac) after our last write
        self._anchor = anchor_path(self.path)
        self._fds = {}  # path -> descriptor kept open between appends (an open per request is costly)

    def append(self, **fields):
        """Append one entry; ``time`` (UTC, ISO 8601) is added unless given. Returns the entry."""
        clash = [k for k in RESERVED if k in fields]
        if clash:
            raise InvalidParameterError(f"fields {clash} are reserved for the hash chain")
        fields.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
        with self._lock:
            fd = self._descriptor(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # other processes
            try:
                size = os.fstat(fd).st_size
                seq, prev = self._tail(size)
                entry = {**fields, "seq": seq + 1, "prev": prev}
                body = canonical(entry)  # what the MAC covers: the entry without its mac
                entry["mac"] = hmac.new(self.key, body, hashlib.sha256).hexdigest()
                line = body[:-1] + b',"mac":"' + entry["mac"].encode() + b'"}\n'  # the same JSON, one encoding
                os.write(fd, line)  # O_APPEND: lands at the end even if another process wrote meanwhile
                if self.fsync:
                    os.fsync(fd)
                self._state = (size + len(line), entry["seq"], entry["mac"])
                self._write_anchor(entry["seq"], entry["mac"])
            finally:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        return entry

    def _descriptor(self, path, flags):
        """An open descriptor for ``path``, reopened if the file was deleted or replaced (rotation)."""
        fd = self._fds.get(path)
        if fd is not None:
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fds[path] = fd = os.open(path, flags, 0o600)
        return fd

    def _tail(self, size):
        """``(seq, mac)`` of the last entry; from memory unless another writer moved the file."""
        if self._state is not None and self._state[0] == size:
            return self._state[1], self._state[2]
        if size == 0:
            return 0, GENESIS
        with open(self.path, "rb") as f:
            f.seek(max(0, size - 65536))
            lines = f.read(size).splitlines()
            if size > 65536 and len(lines) < 2:  # one huge last entry: read it all
                f.seek(0)
                lines = f.read(size).splitlines()
        last = json.loads(lines[-1])
        return int(last["seq"]), last["mac"]

    def _write_anchor(self, count, mac):
        anchor = {"entries": count, "last_mac": mac}
        anchor["mac"] = entry_mac(self.key, anchor)
        record = canonical(anchor).ljust(ANCHOR_BYTES - 1) + b"\n"
        # overwritten in place at a fixed width: one small write, far cheaper than a temp file
        # and a rename per request, and never a shorter record that leaves an old tail behind
        fd = self._descriptor(self._anchor, os.O_WRONLY | os.O_CREAT)
        if hasattr(os, "pwrite"):
            os.pwrite(fd, record, 0)
        else:  # Windows
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, record)

    def close(self):
        """Close the files this log keeps open; the next append opens them again."""
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass


@dataclass(frozen=True)
class AuditReport(OneRowFrame):
    """The result of :func:`verify_log`; ``first_bad`` is a 1-based line number."""

    ok: bool
    entries: int
    first_bad: int = None
    reason: str = ""

    def __bool__(self):
        return self.ok


def verify_log(path, key, require_anchor=True):
    """Walk the chain and compare its end with the anchor; stop at the first bad entry.

    Returns an :class:`AuditReport`. ``entries`` counts the lines read that verify.
    """
    key, path = check_key(key, "key"), Path(path)
    if not path.is_file():
        raise InvalidParameterError(f"path={str(path)!r}: no audit log there")
    prev, n = GENESIS, 0
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, start=1):
            bad = _check_entry(key, line, line_no, prev)
            if bad:
                return AuditReport(False, n, line_no, f"entry {line_no}: {bad}")
            entry = json.loads(line)
            prev, n = entry["mac"], line_no
    bad = _check_anchor(key, path, n, prev, require_anchor)
    if bad:
        return AuditReport(False, n, *bad)
    return AuditReport(True, n, None, f"{n} entries, chain and anchor verify")


def _check_entry(key, line, line_no, prev):
    """Why the entry on ``line_no`` is bad, or ``None``."""
    try:
        entry = json.loads(line)
        mac, seq = entry["mac"], entry["seq"]
    except (ValueError, KeyError, TypeError):
        return "not a JSON entry with seq and mac (corrupted or inserted)"
    if not isinstance(mac, str) or not hmac.compare_digest(mac, entry_mac(key, entry)):
        return "MAC does not match its contents (modified, or inserted without the key)"
    if seq != line_no:
        return f"seq is {seq} where {line_no} was expected (entries deleted, inserted or reordered)"
    if entry.get("prev") != prev:
        return "prev does not match the MAC of the entry before it (entries deleted, inserted or reordered)"
    return None


def _check_anchor(key, path, n, last_mac, require_anchor):
    """``(first_bad, reason)`` if the log's end disagrees with its anchor, else ``None``."""
    anchor_file = anchor_path(path)
    if not anchor_file.is_file():
        if require_anchor and n > 0:
            return n + 1, f"anchor {anchor_file.name} is missing: cannot tell whether entries were cut off the end"
        return None
    try:
        anchor = json.loads(anchor_file.read_bytes())
        valid = hmac.compare_digest(anchor["mac"], entry_mac(key, anchor)) and isinstance(anchor["entries"], int)
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        return n + 1, f"anchor {anchor_file.name} is not authentic (modified or forged)"
    if anchor["entries"] > n:
        return n + 1, (f"entry {n + 1}: missing; the log ends after entry {n} but the anchor records "
                       f"{anchor['entries']} entries (entries were deleted from the end)")
    if anchor["entries"] < n or anchor["last_mac"] != last_mac:
        first = anchor["entries"] + 1 if anchor["entries"] < n else n
        return first, (f"entry {first}: the anchor records {anchor['entries']} entries ending in a different MAC "
                       f"(anchor rolled back, or the log rewritten)")
    return None

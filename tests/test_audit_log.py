"""The HMAC-chained audit log: every kind of tampering is found and the first bad entry named."""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlsec_lessons.deployment.audit import GENESIS, AuditLog, anchor_path, verify_log

KEY = bytes(range(32))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def log(tmp_path):
    """A log of 6 requests."""
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, KEY)
    for i in range(6):
        audit.append(sub=f"user{i % 2}", model="digits", decision="allow" if i != 3 else "deny",
                     status=200 if i != 3 else 403, latency_ms=1.5 + i, input_sha256=f"{i:064x}")
    return path


def lines(path):
    return path.read_text().splitlines()


def write(path, rows):
    path.write_text("".join(r + "\n" for r in rows))


def test_intact_log_verifies(log):
    report = verify_log(log, KEY)
    assert report.ok and bool(report) and report.entries == 6 and report.first_bad is None
    entries = [json.loads(r) for r in lines(log)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert all({"time", "sub", "model", "decision", "status", "latency_ms", "input_sha256"} <= e.keys()
               for e in entries)


def test_mac_matches_an_independent_computation(log):
    # Oracle: HMAC-SHA256 over the canonical JSON of the entry without its mac, computed here from scratch.
    first, second = (json.loads(r) for r in lines(log)[:2])
    body = {k: v for k, v in first.items() if k != "mac"}
    expect = hmac.new(KEY, json.dumps(body, sort_keys=True, separators=(",", ":")).encode(), hashlib.sha256)
    assert first["mac"] == expect.hexdigest()
    assert first["prev"] == GENESIS and second["prev"] == first["mac"]


@pytest.mark.parametrize("line", [1, 4, 6])
def test_modified_entry_is_named(log, line):
    rows = lines(log)
    rows[line - 1] = rows[line - 1].replace('"status":', '"status":1')  # 200 -> 1200, still valid JSON
    write(log, rows)
    report = verify_log(log, KEY)
    assert not report.ok and report.first_bad == line and report.entries == line - 1
    assert report.reason.startswith(f"entry {line}:") and "MAC" in report.reason


def test_modified_entry_with_a_recomputed_plain_hash_is_still_caught(log):
    # An attacker without the key can recompute any unkeyed hash, but not the HMAC.
    rows = lines(log)
    entry = json.loads(rows[3])
    entry["decision"], entry["status"] = "allow", 200
    body = {k: v for k, v in entry.items() if k != "mac"}
    entry["mac"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    rows[3] = json.dumps(entry)
    write(log, rows)
    assert verify_log(log, KEY).first_bad == 4


@pytest.mark.parametrize("line", [1, 3, 5])
def test_deleted_entry_is_named(log, line):
    rows = lines(log)
    del rows[line - 1]
    write(log, rows)
    report = verify_log(log, KEY)
    assert not report.ok and report.first_bad == line and "deleted" in report.reason


def test_deleted_last_entry_is_caught_by_the_anchor(log):
    write(log, lines(log)[:-1])
    report = verify_log(log, KEY)
    assert not report.ok and report.first_bad == 6 and "deleted from the end" in report.reason
    assert report.entries == 5


def test_missing_or_forged_anchor_is_caught(log):
    anchor = anchor_path(log)
    saved = anchor.read_text()
    anchor.write_text(saved.replace('"entries":6', '"entries":5'))
    assert "not authentic" in verify_log(log, KEY).reason
    anchor.unlink()
    report = verify_log(log, KEY)
    assert not report.ok and "missing" in report.reason
    assert verify_log(log, KEY, require_anchor=False).ok  # the chain alone is intact


@pytest.mark.parametrize("where", [1, 3, 7])
def test_inserted_entry_is_named(log, where):
    rows = lines(log)
    forged = json.loads(rows[0])
    forged.update(sub="mallory", decision="allow", mac="f" * 64)
    rows.insert(where - 1, json.dumps(forged))
    write(log, rows)
    report = verify_log(log, KEY)
    assert not report.ok and report.first_bad == where


def test_replayed_genuine_entry_is_caught(log):
    rows = lines(log)
    rows.insert(4, rows[1])  # a real, correctly MACed entry copied to another place
    write(log, rows)
    report = verify_log(log, KEY)
    assert report.first_bad == 5 and "seq" in report.reason


@pytest.mark.parametrize("i, j", [(2, 3), (0, 5), (4, 5)])
def test_reordered_entries_are_named(log, i, j):
    rows = lines(log)
    rows[i], rows[j] = rows[j], rows[i]
    write(log, rows)
    report = verify_log(log, KEY)
    assert not report.ok and report.first_bad == i + 1


def test_garbage_line_and_wrong_key(log):
    rows = lines(log)
    rows.insert(2, "not json")
    write(log, rows)
    assert verify_log(log, KEY).first_bad == 3
    assert verify_log(log, bytes(32) + b"x").first_bad == 1


def test_appending_continues_the_chain_after_reopening(log):
    AuditLog(log, KEY).append(sub="late", status=200)
    report = verify_log(log, KEY)
    assert report.ok and report.entries == 7


def test_a_writer_follows_a_rotated_log_and_a_deleted_anchor(tmp_path):
    # the writer keeps its files open between appends; it must not go on writing to a file
    # that is no longer at the path
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, KEY)
    audit.append(sub="a")
    path.rename(tmp_path / "audit.1.jsonl")  # rotation
    anchor_path(path).rename(tmp_path / "audit.1.jsonl.anchor")
    audit.append(sub="b")
    assert [json.loads(x)["sub"] for x in lines(path)] == ["b"] and json.loads(lines(path)[0])["seq"] == 1
    assert verify_log(path, KEY) and verify_log(tmp_path / "audit.1.jsonl", KEY)
    anchor_path(path).unlink()
    audit.append(sub="c")
    assert verify_log(path, KEY).entries == 2
    audit.close()
    audit.append(sub="d")  # reopens
    assert verify_log(path, KEY).entries == 3


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least 32 bytes"):
        AuditLog(tmp_path / "a.jsonl", b"short")
    audit = AuditLog(tmp_path / "a.jsonl", KEY)
    with pytest.raises(ValueError, match="reserved"):
        audit.append(mac="x")
    with pytest.raises(ValueError):
        audit.append(latency_ms=float("nan"))  # NaN has no canonical JSON form
    with pytest.raises(ValueError, match="no audit log"):
        verify_log(tmp_path / "missing.jsonl", KEY)


def test_threads_appending_concurrently_give_exactly_n_entries(tmp_path):
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path, KEY)
    n_threads, per_thread = 8, 50

    def work(t):
        for i in range(per_thread):
            audit.append(sub=f"t{t}", i=i, status=200)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify_log(path, KEY)
    assert report.ok and report.entries == n_threads * per_thread
    got = sorted((e["sub"], e["i"]) for e in map(json.loads, lines(path)))
    assert got == sorted((f"t{t}", i) for t in range(n_threads) for i in range(per_thread))


@pytest.mark.skipif(os.name != "posix", reason="cross-process locking uses fcntl")
def test_processes_appending_concurrently_give_exactly_n_entries(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path, KEY).append(sub="parent", status=200)
    writer = ("import sys; from mlsec_lessons.deployment.audit import AuditLog\n"
              "log = AuditLog(sys.argv[1], bytes(range(32)))\n"
              "[log.append(sub=sys.argv[2], i=i) for i in range(200)]\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), f"p{k}"], env=env) for k in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    report = verify_log(path, KEY)
    assert report.ok and report.entries == 601, report.reason

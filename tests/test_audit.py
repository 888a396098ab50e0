import json

from modelreg.audit import GENESIS, AuditLog


def _append(log, n):
    return [
        log.append(time=f"t{i}", actor="a", action="register", model="m", details={"i": i})
        for i in range(n)
    ]


def test_chain(tmp_path):
    log = AuditLog(tmp_path / "log.jsonl")
    entries = _append(log, 3)
    assert entries[0].prev == GENESIS
    assert [e.seq for e in log.entries()] == [1, 2, 3]
    assert entries[2].prev == entries[1].hash
    assert log.verify() == []


def test_edit_detected(tmp_path):
    log = AuditLog(tmp_path / "log.jsonl")
    _append(log, 3)
    lines = log.path.read_text().splitlines()
    doc = json.loads(lines[1])
    doc["actor"] = "mallory"
    lines[1] = json.dumps(doc)
    log.path.write_text("\n".join(lines) + "\n")
    assert any("edited" in p for p in log.verify())


def test_deletion_detected(tmp_path):
    log = AuditLog(tmp_path / "log.jsonl")
    _append(log, 3)
    lines = log.path.read_text().splitlines()
    log.path.write_text(lines[0] + "\n" + lines[2] + "\n")
    assert any("chain broken" in p for p in log.verify())


def test_torn_tail_ignored_then_cut(tmp_path):
    log = AuditLog(tmp_path / "log.jsonl")
    _append(log, 2)
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq": 3, "tim')  # a crash mid-append
    assert len(log.entries()) == 2
    assert any("torn" in p for p in log.verify())
    e = _append(log, 1)[0]
    assert e.seq == 3
    assert log.verify() == []


def test_deleting_the_last_entries_is_detected(tmp_path):
    log = AuditLog(tmp_path / "log.jsonl")
    _append(log, 3)
    lines = log.path.read_text().splitlines()
    log.path.write_text("\n".join(lines[:2]) + "\n")
    assert any("deleted" in p for p in log.verify())


def test_rewritten_head_entry_is_detected(tmp_path):
    log = AuditLog(tmp_path / "log.jsonl")
    _append(log, 2)
    lines = log.path.read_text().splitlines()
    doc = json.loads(lines[1])
    doc["details"] = {"i": 99}
    body = {k: v for k, v in doc.items() if k != "hash"}
    import hashlib

    doc["hash"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    lines[1] = json.dumps(doc)
    log.path.write_text("\n".join(lines) + "\n")
    assert any("rewritten" in p for p in log.verify())


def test_head_one_behind_after_a_crash_is_accepted(tmp_path):
    log = AuditLog(tmp_path / "log.jsonl")
    _append(log, 2)
    head = log.head_path.read_bytes()
    _append(log, 1)
    log.head_path.write_bytes(head)  # as if the process died before updating the head
    assert log.verify() == []


def test_last_reads_without_cutting_a_torn_tail(tmp_path):
    import pytest

    from modelreg.errors import IntegrityError

    log = AuditLog(tmp_path / "log.jsonl")
    assert log.last() is None
    entries = _append(log, 2)
    with open(log.path, "ab") as fh:
        fh.write(b'{"seq": 3, "tim')
    size = log.path.stat().st_size
    assert log.last() == entries[-1] and log.path.stat().st_size == size  # read only
    with open(log.path, "ab") as fh:
        fh.write(b"\nnot json\n")
    with pytest.raises(IntegrityError, match="last entry is unreadable"):
        log.last()

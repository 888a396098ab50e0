import os
import random
import signal
import subprocess
import sys
import time

import pytest

from modelreg import Store
from modelreg.errors import Conflict, IntegrityError, InvalidInput, StoreNotFound
from modelreg.store import DIRNAME


def test_init_is_idempotent_and_self_ignoring(tmp_path):
    s1 = Store.init(tmp_path)
    s2 = Store.init(tmp_path)
    assert s1.root == s2.root == tmp_path / DIRNAME
    assert (s1.root / ".gitignore").read_text().splitlines()[-1] == "*"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_init_refuses_foreign_directory(tmp_path):
    (tmp_path / DIRNAME).mkdir()
    with pytest.raises(InvalidInput, match="not an mreg store"):
        Store.init(tmp_path)


def test_discover_walks_up_and_stops_at_ceiling(tmp_path, monkeypatch):
    s = Store.init(tmp_path / "proj")
    deep = tmp_path / "proj" / "a" / "b"
    deep.mkdir(parents=True)
    assert Store.discover(start=deep).root == s.root
    monkeypatch.setenv("MREG_CEILING_DIRS", str(tmp_path / "proj" / "a"))
    with pytest.raises(StoreNotFound, match="mreg init"):
        Store.discover(start=deep)
    monkeypatch.setenv("MREG_STORE", str(tmp_path / "proj"))
    assert Store.discover(start=deep).root == s.root
    assert Store.discover(tmp_path / "proj" / DIRNAME).root == s.root


def test_unsupported_format_is_refused(store):
    cfg = store.root / "config.yaml"
    cfg.write_text(cfg.read_text().replace("format: 1", "format: 99"))
    with pytest.raises(IntegrityError, match="format 99"):
        Store.open(store.root)


def test_bad_gate_in_config_is_reported(store):
    cfg = store.root / "config.yaml"
    cfg.write_text(cfg.read_text().replace("gates: {}", "gates:\n  production: ['f1 > > 3']"))
    with pytest.raises(IntegrityError, match=r"gates\.production"):
        Store.open(store.root)


def test_namespaces(store, model_file):
    store.register("team/fraud", [model_file()], version="1.0.0")
    with pytest.raises(Conflict, match="namespace"):
        store.register("team", [model_file()], version="1.0.0")
    store.register("solo", [model_file()], version="1.0.0")
    with pytest.raises(Conflict, match="already a model"):
        store.register("solo/sub", [model_file()], version="1.0.0")
    assert [m.name for m in store.models()] == ["solo", "team/fraud"]


def test_version_ids_are_manifest_digests(store, model_file):
    import hashlib

    mv = store.register("m", [model_file()], version="1.0.0").version
    data = store.manifest_path("m", "1.0.0").read_bytes()
    assert mv.id == hashlib.sha256(data).hexdigest()
    assert store.resolve("m@1.0.0").id == mv.id
    assert (store.manifest_path("m", "1.0.0").stat().st_mode & 0o777) == 0o444


def test_latest_and_bump_are_by_semver(store, model_file):
    for v in ["1.2.0", "1.10.0", "1.9.0-rc.1"]:
        store.register("m", [model_file(content=v.encode())], version=v)
    assert store.resolve("m").version == "1.10.0"
    assert store.register("m", [model_file(content=b"x")], bump="patch").version.version == "1.10.1"
    assert store.register("m", [model_file(content=b"y")]).version.version == "1.11.0"


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


REGISTER = """
import sys
from modelreg import Store
s = Store.open(sys.argv[1])
for i in range(int(sys.argv[3])):
    p = sys.argv[2] + f"-{i}.bin"
    open(p, "wb").write(p.encode())
    print(s.register("m", [p], bump="patch").version.version)
"""


def test_concurrent_registers_lose_nothing(store, tmp_path):
    procs, per = 6, 5
    ps = [
        _spawn(REGISTER, str(store.root), str(tmp_path / f"w{i}"), str(per)) for i in range(procs)
    ]
    outs = [p.communicate(timeout=120) for p in ps]
    assert all(p.returncode == 0 for p in ps), outs
    versions = [v for out, _ in outs for v in out.split()]
    assert len(versions) == len(set(versions)) == procs * per
    assert {mv.version.version for mv in store.versions("m")} == set(versions)
    report = store.verify()
    assert report.ok, report.problems
    assert report.audit_entries == procs * per


PROMOTE = """
import sys
from modelreg import Store
s = Store.open(sys.argv[1])
for i in range(10):
    s.promote(f"m@1.0.{(i + int(sys.argv[2])) % 3}", "production")
"""


def test_concurrent_promotions_keep_every_move(store, model_file):
    for i in range(3):
        store.register("m", [model_file(content=bytes([i]))], version=f"1.0.{i}")
    ps = [_spawn(PROMOTE, str(store.root), str(k)) for k in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in ps)
    hist = store.history("m", "production")
    assert [e.generation for e in hist] == list(range(1, len(hist) + 1))
    moves = [e for e in store.log("m") if e.action == "promote"]
    assert len(moves) == len(hist)
    assert store.verify().ok


REGISTER_BIG = """
import sys
from modelreg import Store
s = Store.open(sys.argv[1])
s.register("big", [sys.argv[2]], version="1.0.0")
print("done")
"""


def test_kill_9_during_register_leaves_store_valid(store, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(96):
            fh.write(os.urandom(1 << 20))
    rng = random.Random(1234)
    for _ in range(6):
        p = _spawn(REGISTER_BIG, str(store.root), str(big))
        time.sleep(rng.uniform(0.05, 0.6))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate()
        report = store.verify()
        assert report.ok, report.problems
        # an object is either absent or whole: never a partial file under objects/
        for d in store.objects.iter_digests():
            assert store.objects.verify(d)
        if "done" in out:
            assert store.resolve("big@1.0.0").files[0].size == big.stat().st_size
    mv = store.register("big", [big], version="1.0.0").version
    assert mv.files[0].size == big.stat().st_size
    assert store.verify().ok


def test_lock_is_reentrant_and_times_out(store, monkeypatch):
    from modelreg.errors import LockTimeout

    with store.locked(), store.locked():  # nested use by one Store does not deadlock
        other = Store.open(store.root)
        monkeypatch.setenv("MREG_LOCK_TIMEOUT", "0.2")
        with pytest.raises(LockTimeout, match="MREG_LOCK_TIMEOUT"), other.locked():
            pass

"""`mreg delete` (issue 19, "Deletion, audited"): tombstones, refusals, readers, gc, fsck, and a
delete killed (`kill -9`) at every write it makes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelreg import Store
from modelreg.errors import Conflict, NotFound, TransitionRefused
from tests.conftest import snapshot
from tests.release.util import SEED, make_model


@pytest.fixture
def model(store: Store, tmp_path: Path) -> Store:
    """Model `m`: 1.0.0 (production), 1.1.0, 1.2.0."""
    return make_model(store, tmp_path)


def tombstone(store: Store, version: str, name: str = "m") -> Path:
    return store.root / "models" / name / "tombstones" / f"{version}.yaml"


def problems(store: Store) -> list[object]:
    """fsck's findings but the objects a delete leaves to gc (`orphan-object` warnings)."""
    return [f for f in store.fsck().findings if f.kind != "orphan-object"]


def deletes(store: Store) -> list[dict[str, object]]:
    return [{"model": e.model, **e.details} for e in store.log() if e.action == "delete"]


def test_a_deleted_version_leaves_a_tombstone_and_every_reader_says_so(
    model: Store, tmp_path: Path
) -> None:
    mv = model.resolve("m@1.1.0")
    model.tag("m@1.1.0", ["candidate"])
    result = model.delete("m@1.1.0", reason="registered a secret", actor="Ops <ops@example.com>")
    assert result.changed and [t.version for t in result.deleted] == ["1.1.0"]
    assert not model.manifest_path("m", "1.1.0").exists()
    assert not model.state_path("m", "1.1.0").exists()
    t = tombstone(model, "1.1.0")
    assert not t.stat().st_mode & stat.S_IWUSR  # read-only, like a manifest
    text = t.read_text()
    assert mv.id in text and "registered a secret" in text and "model.bin" not in text
    assert deletes(model) == [
        {"model": "m", "version": "1.1.0", "id": mv.id, "reason": "registered a secret",
         "forced": False, "aliases": [], "objects": 1},
    ]  # fmt: skip
    said = "m@1.1.0 was deleted at .* by Ops <ops@example.com>: registered a secret"
    for read in (
        lambda: model.info("m@1.1.0"),
        lambda: model.resolve("m@1.1.0"),
        lambda: model.diff("m@1.0.0", "m@1.1.0"),
        lambda: model.get("m@1.1.0", tmp_path / "out"),
        lambda: model.promote("m@1.1.0", "staging"),
    ):
        with pytest.raises(NotFound, match=said):
            read()
    assert [i.version.version for i in model.versions("m")] == ["1.0.0", "1.2.0"]
    assert [i.version.version for i in model.versions("m", tags=["candidate"])] == []
    assert model.models()[0].versions == 2
    assert not problems(model)  # the index agrees too
    assert model.verify().ok


def test_the_cli_deletes_and_readers_exit_2_with_one_line(run_mreg, model: Store) -> None:
    done = run_mreg("delete", "m@1.2.0", "--reason", "800 MB mistake", "--json")
    assert done.ok, done
    doc = done.json()
    assert doc["changed"] and doc["deleted"][0]["version"] == "1.2.0"
    assert doc["deleted"][0]["aliases_removed"] == [] and doc["already_deleted"] == []
    shown = run_mreg("show", "m@1.2.0")
    assert shown.returncode == 2
    assert shown.stderr.count("\n") == 1 and "was deleted at" in shown.stderr
    assert "800 MB mistake" in shown.stderr
    assert "1.2.0" not in run_mreg("list", "m").stdout
    again = run_mreg("delete", "m@1.2.0", "--reason", "again")
    assert again.ok and "already deleted" in again.stdout


def test_an_alias_refuses_the_delete_unless_forced(model: Store) -> None:
    before = snapshot(model.root)
    with pytest.raises(TransitionRefused, match=r"m@1\.0\.0 is pointed at by m@production"):
        model.delete("m@1.0.0", reason="bad")
    assert snapshot(model.root) == before
    done = model.delete("m@1.0.0", reason="bad", force=True)
    assert done.deleted[0].aliases == ("production",) and done.deleted[0].forced
    assert not model.alias_path("m", "production").exists()
    assert deletes(model)[0]["aliases"] == ["production"]
    with pytest.raises(NotFound, match="no such alias"):
        model.resolve("m@production")
    assert not problems(model)


def test_a_live_release_refuses_even_with_force(model: Store) -> None:
    model.release_start("m", "1.1.0", steps="1,5,50,100", seed=SEED)
    for version in ("1.1.0", "1.0.0"):  # canary, baseline
        with pytest.raises(TransitionRefused, match=r"live release .*abort it first"):
            model.delete(f"m@{version}", reason="bad", force=True)
    model.release_abort("m", reason="stop")
    model.delete("m@1.1.0", reason="bad")  # the ended release names it: still a valid store
    assert not problems(model)


def test_a_deleted_number_is_never_registered_again(model: Store, model_file) -> None:
    model.delete("m@1.2.0", reason="gone")
    f = model_file("model.bin", b"other weights")
    with pytest.raises(Conflict, match=r"m@1\.2\.0 was deleted at .*never reused"):
        model.register("m", [f], version="1.2.0", detect_code=False)
    assert model.register("m", [f], detect_code=False).version.version == "1.3.0"  # bumped past


def test_deleting_a_whole_model(run_mreg, model: Store, model_file) -> None:
    assert not run_mreg("delete", "m", "--reason", "whole").ok  # production points at 1.0.0
    done = run_mreg("delete", "m", "--reason", "whole", "--force", "--json")
    assert done.ok, done
    assert [d["version"] for d in done.json()["deleted"]] == ["1.0.0", "1.1.0", "1.2.0"]
    assert model.models() == []
    shown = run_mreg("show", "m")
    assert shown.returncode == 2 and "every version of 'm' was deleted" in shown.stderr
    again = model.delete("m", reason="whole")
    assert not again.changed and again.already == ("1.0.0", "1.1.0", "1.2.0")
    report = model.fsck()
    assert report.ok and {f.kind for f in report.findings} == {"orphan-object"}
    f = model_file("model.bin", b"new life")  # the name stays a model: a new number is fine
    assert model.register("m", [f], detect_code=False).version.version == "1.3.0"


@pytest.mark.parametrize(
    "args",
    [
        ("delete", "m@1.1.0"),  # no --reason
        ("delete", "m@1.1.0", "--reason", " "),
        ("delete", "m@9.9.9", "--reason", "x"),
        ("delete", "nope", "--reason", "x"),
        ("delete", "m@production", "--reason", "x"),
        ("delete", "m@latest", "--reason", "x"),
        ("delete", "m@1.1.0", "--reason", "token ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(run_mreg, model: Store, args: tuple[str]) -> None:
    before = snapshot(model.root)
    result = run_mreg(*args)
    assert result.returncode == 2, result
    assert snapshot(model.root) == before


def test_gc_keeps_a_deleted_versions_objects_for_the_grace_period(model: Store) -> None:
    digest = model.resolve("m@1.1.0").files[0].sha256
    model.delete("m@1.1.0", reason="gone")
    assert model.gc().removed == ()  # the default grace: kept
    assert model.objects.has(digest)
    assert [d for d, _ in model.gc(grace=0).removed] == [digest]
    assert not model.objects.has(digest)
    assert not problems(model)


def test_unpack_of_a_deleted_version_is_refused(run_mreg, model: Store, tmp_path: Path) -> None:
    bundle = tmp_path / "m.tar"
    model.pack("m@1.1.0", bundle)
    model.delete("m@1.1.0", reason="gone")
    before = snapshot(model.root)
    result = run_mreg("unpack", str(bundle))
    assert result.returncode == 1 and "was deleted" in result.stderr, result
    assert snapshot(model.root) == before


def test_fsck_reports_bad_tombstones(model: Store) -> None:
    model.delete("m@1.1.0", reason="gone")
    t = tombstone(model, "1.1.0")
    t.chmod(0o644)
    t.write_text(t.read_text().replace("version: 1.1.0", "version: 1.2.0"))
    assert [f.kind for f in model.fsck().errors] == ["bad-tombstone"]
    t.write_text("kind: Tombstone\n")
    assert [f.kind for f in model.fsck().errors] == ["bad-tombstone"]
    with pytest.raises(Exception, match="tombstone"):
        model.gc(grace=0)  # what a damaged tombstone keeps is unknown: no gc


# -- kill -9 at every write -----------------------------------------------------------------

KILLER = textwrap.dedent(
    """
    import os, signal, sys
    n, calls = int(sys.argv[1]), [0]
    def counted(fn):
        def call(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return call
    for name in ("replace", "unlink", "rmdir", "write", "fsync"):
        setattr(os, name, counted(getattr(os, name)))
    from modelreg.cli import main
    main(sys.argv[2:])
    """
)


def test_a_delete_killed_at_any_write_leaves_a_valid_store_a_rerun_completes(
    model: Store, tmp_path: Path
) -> None:
    """SIGKILL before the 1st, 2nd, ... file operation of `mreg delete --force` (the version
    has an alias, state and a signature-free manifest), until a run is not killed."""
    model.tag("m@1.0.0", ["x"])  # a state file to remove
    mv = model.resolve("m@1.0.0")
    killed = 0
    for n in range(1, 80):
        work = tmp_path / f"kill-{n}"
        shutil.copytree(model.root.parent, work, symlinks=True)
        proc = subprocess.run(
            [sys.executable, "-c", KILLER, str(n), "delete", "m@1.0.0", "--reason", "r",
             "--force"],
            cwd=work, capture_output=True, text=True, timeout=60,
            env={**os.environ, "MREG_LOCK_TIMEOUT": "10"},
        )  # fmt: skip
        store = Store.open(work)
        if proc.returncode == 0:
            break
        assert proc.returncode == -9, proc.stderr
        killed += 1
        report = store.fsck()
        assert report.ok, (n, report.errors)
        if tombstone(store, "1.0.0").exists():  # deleted for every reader from here on
            with pytest.raises(NotFound, match="was deleted"):
                store.resolve("m@1.0.0")
            assert "1.0.0" not in [i.version.version for i in store.versions("m")]
        else:
            assert store.resolve("m@1.0.0").id == mv.id
        store.delete("m@1.0.0", reason="r", force=True)  # the re-run completes it
        report = store.fsck()
        left = {"orphan-object", "leftover-temp"}  # what any crash may leave (store-format.md)
        assert report.ok and not [f for f in report.findings if f.kind not in left], (n, report)
        assert [d["id"] for d in deletes(store)] == [mv.id]  # one entry, never two
        assert not store.alias_path("m", "production").exists()
        assert store.verify().ok
    else:  # pragma: no cover (the loop always ends with a run that was not killed)
        raise AssertionError("every run was killed")
    assert killed >= 6  # tombstone, alias, state, manifest, audit: each was a kill point


def test_fsck_repair_finishes_a_delete_cut_short(model: Store) -> None:
    manifest = model.manifest_path("m", "1.1.0")
    data = manifest.read_bytes()
    model.delete("m@1.1.0", reason="gone")
    manifest.write_bytes(data)  # as a kill between the tombstone and the manifest's removal
    assert model.fsck().ok and [f.kind for f in problems(model)] == ["unfinished-delete"]
    with pytest.raises(NotFound, match="was deleted"):
        model.resolve("m@1.1.0")
    repaired = model.fsck(repair=True)
    assert [r.action for r in repaired.repairs] == ["finished-delete"]
    assert not manifest.exists() and len(deletes(model)) == 1
    assert not problems(model)
    manifest.write_bytes(b"other: content\n")  # a manifest its tombstone does not name
    assert [f.kind for f in model.fsck().errors] == ["bad-tombstone"]

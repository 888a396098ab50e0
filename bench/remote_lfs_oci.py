#!/usr/bin/env python3
"""Benchmark `mreg push` / `mreg pull` to a Git LFS server and an OCI registry (issue 20).

The same bytes go to the same servers by mreg and by each server's own client, in one run:

* **Git LFS**: giftless (local storage, under gunicorn, as the tests start it:
  tests/lfsserver.py) on 127.0.0.1. The reference is `git lfs push --all origin` from a git
  repository whose commit holds the files as LFS pointers (the commit, which hashes the
  files into `.git/lfs/objects` as `mreg register` hashes them into the store, is not
  timed), and `git lfs fetch --all` into a fresh clone for the pull.
* **OCI**: Debian's `docker-registry` (CNCF distribution, tests/ociregistry.py) on
  127.0.0.1. The reference is `skopeo copy oci:LAYOUT:1.0.0 docker://...` of the layout
  `mreg pack --format oci` writes for the same version (the same manifest and layers; the
  pack is not timed), and `skopeo copy docker://... oci:DIR` for the pull.

Two workloads: one 1 GiB file, and 1,000 files of 4 KiB in one version. For each: the
reference push, `mreg push` to an empty remote, a second `mreg push` of the unchanged store
(what it costs to find out that nothing changed), the reference pull, `mreg pull` into an
empty store. Every operation runs in its own process, timed from the parent, with its peak
RSS from `wait4`; mreg runs as the CLI, start-up included. Each workload uses fresh
repositories on the servers, so nothing is deduplicated across tools.

Usage::

    python3 bench/remote_lfs_oci.py                 # full run, saves bench/results/remote-lfs-oci-DATE.{json,md}
    python3 bench/remote_lfs_oci.py --big-mib 64 --small 100   # quick run (not saved unless --save)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(
    0, str(ROOT)
)  # the servers the tests start: tests/lfsserver.py, tests/ociregistry.py

from tests.lfsserver import ANON, giftless  # noqa: E402
from tests.ociregistry import Registry  # noqa: E402

MiB = 1 << 20
ENV = {
    "MREG_AUTHOR": "bench <bench@example.com>",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}


def timed(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run one process and measure it: wall seconds and the child's peak RSS (wait4)."""
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as devnull, tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env={**os.environ, **ENV, **(env or {})}, stdout=devnull, stderr=errf,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            errf.seek(0)
            raise SystemExit(f"failed: {' '.join(cmd)}\n{errf.read().decode(errors='replace')}")
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def mreg(*args: str, cwd: Path) -> dict[str, Any]:
    return timed([sys.executable, "-m", "modelreg", *args], cwd=cwd)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **ENV}
    )


def make_data(root: Path, big_mib: int, small: int) -> tuple[Path, Path]:
    """One big random file and a directory of `small` 4 KiB random files."""
    rnd = random.Random(20)
    big = root / "data" / "big" / "model.bin"
    big.parent.mkdir(parents=True)
    with open(big, "wb") as fh:
        for _ in range(big_mib):
            fh.write(rnd.randbytes(MiB))
    shards = root / "data" / "small" / "shards"
    shards.mkdir(parents=True)
    for i in range(small):
        (shards / f"shard-{i:04d}.bin").write_bytes(rnd.randbytes(4096))
    return big, shards


def store_with(root: Path, name: str, src: Path) -> Path:
    work = root / f"store-{name}"
    mreg("init", str(work), cwd=root)
    mreg("register", name, str(src), "--version", "1.0.0", "--no-code", cwd=work)
    return work


def fresh_store(root: Path, tag: str, url: str, *options: str) -> Path:
    other = root / f"pulled-{tag}"
    mreg("init", str(other), cwd=root)
    mreg("remote", "add", "r", url, *options, cwd=other)
    return other


def lfs_workload(root: Path, name: str, work: Path, src: Path, base: str) -> dict[str, Any]:
    """git lfs push/fetch and mreg push/pull, against one giftless server."""
    out: dict[str, Any] = {}
    # the reference: a repository whose commit holds the files as LFS pointers
    repo = root / f"git-{name}"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "lfs", "install", "--local")
    git(repo, "lfs", "track", "*.bin")
    dest = repo / src.name
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copy2(src, dest)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    path = f"bench/ref-{uuid.uuid4().hex[:8]}"
    bare = root / f"bare-{name}.git"
    git(root, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "config", "lfs.url", f"{base}/{path}.git/info/lfs")
    out["git_lfs_push"] = timed(["git", "lfs", "push", "--all", "origin"], cwd=repo)
    git(repo, "push", "-q", "--no-verify", "origin", "main")
    clone = root / f"clone-{name}"
    subprocess.run(
        ["git", "clone", "-q", str(bare), str(clone)], check=True, capture_output=True,
        env={**os.environ, **ENV, "GIT_LFS_SKIP_SMUDGE": "1"},
    )  # fmt: skip
    git(clone, "config", "lfs.url", f"{base}/{path}.git/info/lfs")
    out["git_lfs_fetch"] = timed(["git", "lfs", "fetch", "--all", "origin"], cwd=clone)
    shutil.rmtree(repo)
    shutil.rmtree(clone)
    shutil.rmtree(bare)

    url = f"lfs+{base}/bench/mreg-{uuid.uuid4().hex[:8]}.git/info/lfs"
    meta = root / f"meta-{name}"
    mreg("remote", "add", "lfs", url, "--option", f"meta={meta}", cwd=work)
    out["mreg_push"] = mreg("push", "lfs", cwd=work)
    out["mreg_push_again"] = mreg("push", "lfs", cwd=work)
    other = fresh_store(root, f"lfs-{name}", url, "--option", f"meta={meta}")
    out["mreg_pull"] = mreg("pull", cwd=other)
    shutil.rmtree(other)
    mreg("remote", "remove", "lfs", cwd=work)
    shutil.rmtree(meta)
    return out


def oci_workload(root: Path, name: str, work: Path, host: str) -> dict[str, Any]:
    """skopeo copy both ways and mreg push/pull, against one registry."""
    out: dict[str, Any] = {}
    layout = root / f"layout-{name}"
    mreg("pack", f"{name}@1.0.0", "--format", "oci", "--out", str(layout), cwd=work)
    ref = f"docker://{host}/ref-{uuid.uuid4().hex[:8]}/{name}:1.0.0"
    out["skopeo_copy_push"] = timed(
        ["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:1.0.0", ref]
    )
    got = root / f"skopeo-got-{name}"
    out["skopeo_copy_pull"] = timed(
        ["skopeo", "copy", "-q", "--src-tls-verify=false", ref, f"oci:{got}:1.0.0"]
    )
    shutil.rmtree(layout)
    shutil.rmtree(got)

    url = f"oci://{host}/mreg-{uuid.uuid4().hex[:8]}"
    mreg("remote", "add", "oci", url, cwd=work)
    out["mreg_push"] = mreg("push", "oci", cwd=work)
    out["mreg_push_again"] = mreg("push", "oci", cwd=work)
    other = fresh_store(root, f"oci-{name}", url)
    out["mreg_pull"] = mreg("pull", "r", name, cwd=other)
    shutil.rmtree(other)
    mreg("remote", "remove", "oci", cwd=work)
    return out


def ratios(r: dict[str, Any]) -> dict[str, float]:
    """mreg's time over the reference's, for push and pull (below 1: mreg is faster)."""
    lfs, oci = r["lfs"], r["oci"]
    return {
        "lfs_push_vs_git_lfs_push": round(lfs["mreg_push"]["seconds"] / lfs["git_lfs_push"]["seconds"], 2),
        "lfs_pull_vs_git_lfs_fetch": round(lfs["mreg_pull"]["seconds"] / lfs["git_lfs_fetch"]["seconds"], 2),
        "oci_push_vs_skopeo_copy": round(oci["mreg_push"]["seconds"] / oci["skopeo_copy_push"]["seconds"], 2),
        "oci_pull_vs_skopeo_copy": round(oci["mreg_pull"]["seconds"] / oci["skopeo_copy_pull"]["seconds"], 2),
    }  # fmt: skip


def markdown(doc: dict[str, Any]) -> str:
    """The results as the tables docs/benchmarks.md quotes."""
    lines = [
        f"# Push and pull to Git LFS and OCI ({doc['date']})",
        "",
        f"{doc['machine']['cpus']} CPUs, Python {doc['machine']['python']}; seconds of wall time "
        "per process (start-up included), peak RSS in MiB. An mreg command's start-up alone "
        f"(`mreg --version`, median of 5): {doc['mreg_startup_seconds']} s.",
        "",
        "| workload | server | operation | seconds | peak RSS MiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for wl, res in doc["results"].items():
        for server in ("lfs", "oci"):
            for op, fig in res[server].items():
                lines.append(
                    f"| {wl} | {server} | {op} | {fig['seconds']} | {fig['peak_rss_mib']} |"
                )
    lines += ["", "| workload | ratio (mreg / reference) | value |", "| --- | --- | --- |"]
    for wl, res in doc["results"].items():
        for key, value in res["ratios"].items():
            lines.append(f"| {wl} | {key} | {value} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the large file (MiB)")
    ap.add_argument("--small", type=int, default=1000, help="number of 4 KiB files")
    ap.add_argument("--save", action="store_true", help="save even a non-default run")
    ap.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mreg-bench-lfs-oci-", dir=args.tmp))
    servers = root / "servers"
    servers.mkdir()
    (servers / "giftless").mkdir()
    lfs_gen = giftless(servers / "giftless", ANON)
    lfs = next(lfs_gen)
    registry = Registry(servers / "registry")
    try:
        big, shards = make_data(root, args.big_mib, args.small)
        # the fixed cost of every mreg command above: a Python process importing the CLI
        startup = sorted(mreg("--version", cwd=root)["seconds"] for _ in range(5))[2]
        results: dict[str, Any] = {}
        for name, src in (("small", shards), ("big", big)):
            work = store_with(root, name, src)
            res = {
                "lfs": lfs_workload(root, name, work, src, lfs.base),
                "oci": oci_workload(root, name, work, registry.host),
            }
            res["ratios"] = ratios(res)
            res["files"] = args.small if src.is_dir() else 1
            res["bytes"] = (
                sum(p.stat().st_size for p in src.iterdir()) if src.is_dir() else src.stat().st_size
            )
            results[name] = res
            shutil.rmtree(work)
            print(json.dumps({name: res}, indent=2), file=sys.stderr)
    finally:
        registry.stop()
        lfs_gen.close()
        shutil.rmtree(root, ignore_errors=True)
    versions = {}
    for cmd in (
        ["git", "lfs", "version"],
        ["skopeo", "--version"],
        ["/usr/bin/docker-registry", "--version"],
    ):
        p = subprocess.run(cmd, capture_output=True, text=True)
        versions[cmd[0].rsplit("/", 1)[-1] + (" lfs" if "lfs" in cmd else "")] = p.stdout.strip()
    doc = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "versions": versions,
        },
        "params": {"big_mib": args.big_mib, "small": args.small, "small_bytes": 4096},
        "mreg_startup_seconds": startup,
        "results": results,
    }  # fmt: skip
    text = json.dumps(doc, indent=2)
    print(text)
    if args.save or (args.big_mib == 1024 and args.small == 1000):
        base = ROOT / "bench" / "results" / f"remote-lfs-oci-{doc['date'][:10]}"
        base.with_suffix(".json").write_text(text + "\n")
        base.with_suffix(".md").write_text(markdown(doc))
        print(f"saved {base}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()

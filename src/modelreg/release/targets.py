"""Apply a model's routing to its release targets: files, GitOps commits, commands (issue 17).

`apply(store, name, spec)` renders the target's export of the current routing, writes it
(`output`: a file, or the nginx-njs directory), commits and pushes it (`git`), runs the
apply command (`exec`, the export on its standard input and `MREG_*` in its environment),
then asks the target which generation it runs (`report`, or for nginx-njs the gateway's
`/.mreg/status`) until it answers the one applied. The outcome is recorded per target in
`targets/NAME.json` (local state) and shown by `mreg release status`; `sync` applies every
configured target that is not at the release's generation, and `mreg release watch` judges
and steps only once every target applied the generation in force.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg import layout
from modelreg.config import StoreConfig
from modelreg.errors import IntegrityError, InvalidInput, MregError, NotFound
from modelreg.fsutil import atomic_write, read_regular
from modelreg.release.targetspec import TargetSpec

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle
    from modelreg.release.export.plan import Export
    from modelreg.release.results import ReleaseStatus
    from modelreg.release.rollout import Rollout

__all__ = [
    "Applied",
    "ApplyFailed",
    "add_target",
    "applied",
    "apply",
    "apply_export",
    "apply_once",
    "apply_targets",
    "message",
    "pending",
    "release_status",
    "remove_target",
    "sync",
]

_STATE_LIMIT = 1 << 20
_OUTPUT_LIMIT = 64 * 1024
REPORT_POLL_S = 0.1


class ApplyFailed(MregError):
    """A target could not apply the routing (a command failed, a push was refused...)."""


@dataclass(frozen=True)
class Applied:
    """What a target last did: the generation it runs, or why the last apply failed."""

    target: str
    generation: int
    """The last generation the target applied (0: none yet)."""
    ok: bool
    """False when the last attempt failed (then `generation` is still the previous one)."""
    time: str
    error: str | None = None
    attempted: int | None = None
    """The generation the failed attempt tried to apply."""
    commit: str | None = None
    """The git commit of the last apply (GitOps targets)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the state file; `release status --json`)."""
        return {
            "target": self.target, "generation": self.generation, "ok": self.ok,
            "time": self.time, "error": self.error, "attempted": self.attempted,
            "commit": self.commit,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, doc: Any) -> Applied | None:
        """Parse a state entry; None when it is not one (the target is then re-applied)."""
        if not isinstance(doc, dict):
            return None
        gen, ok, target = doc.get("generation"), doc.get("ok"), doc.get("target")
        if not isinstance(gen, int) or not isinstance(ok, bool) or not isinstance(target, str):
            return None
        err, att, commit = doc.get("error"), doc.get("attempted"), doc.get("commit")
        return cls(
            target, gen, ok, str(doc.get("time", "")), err if isinstance(err, str) else None,
            att if isinstance(att, int) else None, commit if isinstance(commit, str) else None,
        )  # fmt: skip


def message(result: Export, rollout: Rollout | None) -> str:
    """The one-line description of a change: the GitOps commit message, `MREG_MESSAGE`."""
    what = f"{result.model}: generation {result.generation}"
    if rollout is None:
        return f"{what}: production only (no release)"
    last = rollout.history[-1] if rollout.history else None
    action = last.action if last is not None else rollout.state
    from modelreg.release.bucketing import format_weight

    return (
        f"{what}: release {rollout.release} {action} -> {rollout.state}, canary "
        f"{rollout.canary.version} at {format_weight(rollout.canary_share)}% "
        f"(baseline {rollout.baseline.version})"
    )


def _run(cmd: str, stdin: bytes, env: dict[str, str], timeout: float, what: str) -> str:
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", cmd], input=stdin, capture_output=True, timeout=timeout,
            env={**os.environ, **env}, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ApplyFailed(f"{what} {cmd!r} did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise ApplyFailed(f"{what} {cmd!r} could not run: {exc.strerror}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = f": {tail[-1][:300]}" if tail else ""
        raise ApplyFailed(f"{what} {cmd!r} exited with {done.returncode}{why}")
    return done.stdout[:_OUTPUT_LIMIT].decode("utf-8", "replace")


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()
        why = tail[-1][:300] if tail else f"exit {done.returncode}"
        raise ApplyFailed(f"git {args[0]} in {repo}: {why}")
    return done.stdout.strip()


def _commit(output: Path, msg: str) -> str:
    """Commit `output` (only it) in its repository if it changed, push; the HEAD commit."""
    where = output if output.is_dir() else output.parent
    top = Path(_git(where, "rev-parse", "--show-toplevel"))
    rel = os.path.relpath(output.resolve(), top.resolve())
    if rel.startswith(".."):
        raise ApplyFailed(f"{output} is not inside the git repository {top}")
    _git(top, "add", "--all", "--", rel)
    changed = subprocess.run(
        ["git", "-C", str(top), "diff", "--cached", "--quiet", "--", rel], check=False
    ).returncode
    if changed:
        env = {}
        if not subprocess.run(["git", "-C", str(top), "config", "user.email"],
                              capture_output=True, check=False).stdout.strip():  # fmt: skip
            env = {"GIT_AUTHOR_NAME": "mreg", "GIT_AUTHOR_EMAIL": "mreg@localhost"}
            env |= {"GIT_COMMITTER_NAME": "mreg", "GIT_COMMITTER_EMAIL": "mreg@localhost"}
        _git(top, "commit", "--quiet", "-m", msg, "--", rel, env=env)
    if _git(top, "remote"):
        _git(top, "push", "--quiet")
    return _git(top, "rev-parse", "HEAD")


def _gateway_generation(spec: TargetSpec) -> int | None:
    """The generation the nginx-njs gateway serves, from its `/.mreg/status`."""
    listen = spec.options.listen
    host, _, port = listen.rpartition(":")
    if host in ("", "*", "0.0.0.0"):
        host = "127.0.0.1"
    if host == "[::]":
        host = "[::1]"
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/.mreg/status", timeout=2) as r:
            doc = json.loads(r.read(_OUTPUT_LIMIT))
    except (OSError, ValueError):
        return None
    gen = doc.get("generation") if isinstance(doc, dict) else None
    return gen if isinstance(gen, int) and doc.get("table") == "routing" else None


def _reported(spec: TargetSpec, env: dict[str, str]) -> int | None:
    if spec.report is not None:
        out = _run(spec.report, b"", env, spec.timeout_s, "the report command").strip()
        try:
            return int(out.split()[-1]) if out else None
        except ValueError:
            raise ApplyFailed(
                f"the report command printed {out[:80]!r}, not a generation"
            ) from None
    if spec.format == "nginx-njs":
        return _gateway_generation(spec)
    return None


def apply_export(
    result: Export,
    spec: TargetSpec,
    msg: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """Write, commit, run and confirm one export on one target; the git commit, if any.

    Raises:
        ApplyFailed: a step failed, or the target did not report the generation in time.
        LossyExport: the export has losses and the target is not lossy.
    """
    from modelreg.release.export.files import write

    result.raise_for_losses()
    commit = None
    if spec.output is not None:
        write(result, Path(spec.output))
        if spec.git:
            commit = _commit(Path(spec.output), msg)
    env = {
        "MREG_MODEL": result.model, "MREG_FORMAT": result.format, "MREG_TARGET": spec.name,
        "MREG_GENERATION": str(result.generation), "MREG_OUTPUT": spec.output or "",
        "MREG_MESSAGE": msg,
    }  # fmt: skip
    if spec.exec is not None:
        data = dict(result.files).get("routing.json") or result.yaml()
        _run(spec.exec, data, env, spec.timeout_s, "the apply command")
    if spec.report is None and spec.format != "nginx-njs":
        return commit
    deadline = clock() + spec.timeout_s
    while True:
        got = _reported(spec, env)
        if got is not None and got >= result.generation:
            return commit
        if clock() >= deadline:
            raise ApplyFailed(
                f"target {spec.name} reports generation {got if got is not None else 'none'}, "
                f"not {result.generation}, {spec.timeout_s:g} s after applying it"
            )
        sleep(REPORT_POLL_S)


def applied(store: StoreHandle, name: str) -> dict[str, Applied]:
    """The last outcome of each target of `name` (from `targets/NAME.json`)."""
    path = layout.target_state(store.root, name)
    try:
        data = read_regular(path, _STATE_LIMIT, InvalidInput)
        doc = json.loads(data) if data else {}
    except (InvalidInput, ValueError, RecursionError):
        return {}  # unreadable local state: every target is applied again
    if not isinstance(doc, dict):
        return {}
    out = {}
    for key, entry in doc.items():
        a = Applied.from_dict(entry)
        if a is not None and a.target == key:
            out[key] = a
    return out


def _record(store: StoreHandle, name: str, outcome: Applied) -> None:
    state = applied(store, name)
    state[outcome.target] = outcome
    path = layout.target_state(store.root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({k: v.to_dict() for k, v in sorted(state.items())}, indent=1) + "\n"
    atomic_write(path, data.encode())


def _spec_for(spec: TargetSpec) -> TargetSpec:
    if spec.format != "nginx-njs" or spec.output is None:
        return spec
    directory = str(Path(spec.output).resolve())
    return replace(spec, options=replace(spec.options, directory=directory))


def apply(store: StoreHandle, name: str, spec: TargetSpec, *, record: bool = True) -> Applied:
    """Apply the current routing of `name` to one target and record the outcome.

    Never raises for a failure of the target itself: the outcome says `ok=False` and why.
    `record=False` applies without keeping the outcome (a one-off `export --exec`).

    Raises:
        NotFound: no such model or nothing to route to.
        IntegrityError: the rollout manifest is damaged.
    """
    from modelreg.release.export.render import export
    from modelreg.release.manifestfile import read_rollout

    spec = _spec_for(spec)
    rollout = read_rollout(store, name)
    previous = applied(store, name).get(spec.name)
    before = previous.generation if previous is not None else 0
    try:
        result = export(store, name, spec.format, spec.options)
        commit = apply_export(result, spec, message(result, rollout))
    except (IntegrityError, NotFound):
        raise  # the store's problem, not the target's
    except MregError as exc:  # the target's failure (a command, a push, a loss): recorded
        attempted = rollout.generation if rollout is not None else 0
        outcome = Applied(spec.name, before, False, store.now(), str(exc), attempted)
    else:
        outcome = Applied(spec.name, result.generation, True, store.now(), commit=commit)
    if record:
        _record(store, name, outcome)
    return outcome


def apply_once(store: StoreHandle, name: str, spec: TargetSpec) -> Applied:
    """Write and apply the export once, without recording it (`export --exec/--git`)."""
    return apply(store, name, spec, record=False)


def pending(store: StoreHandle, name: str, generation: int) -> list[TargetSpec]:
    """The configured targets of `name` that have not applied `generation` (or a later one)."""
    done = applied(store, name)
    out = []
    for spec in store.config.targets.get(name, ()):
        a = done.get(spec.name)
        if a is None or not a.ok or a.generation < generation:
            out.append(spec)
    return out


def sync(
    store: StoreHandle, name: str, generation: int, *, only: Sequence[str] = ()
) -> list[Applied]:
    """Apply each configured target of `name` not yet at `generation`; their outcomes."""
    return [
        apply(store, name, spec)
        for spec in pending(store, name, generation)
        if not only or spec.name in only
    ]


def apply_targets(store: StoreHandle, name: str, only: Sequence[str] = ()) -> list[Applied]:
    """`mreg release apply`: apply the current routing to every target (or those named) now.

    Raises:
        NotFound: no such model, or `only` names a target that is not configured.
    """
    specs = store.config.targets.get(name, ())
    missing = set(only) - {t.name for t in specs}
    if missing:
        raise NotFound(f"{name} has no release target {sorted(missing)[0]!r}")
    return [apply(store, name, t) for t in specs if not only or t.name in only]


def release_status(store: StoreHandle, name: str) -> ReleaseStatus:
    """`mreg release status`: the release (`ops.status`) and what each target applied."""
    from dataclasses import replace as _replace

    from modelreg.release.ops import status

    st = status(store, name)
    done = applied(store, name)
    rows = []
    for spec in store.config.targets.get(name, ()):
        a = done.get(spec.name)
        row = a.to_dict() if a is not None else {"target": spec.name, "generation": 0, "ok": None}
        rows.append({**row, "format": spec.format})
    return _replace(st, targets=tuple(rows)) if rows else st


def _save(store: StoreHandle, name: str, specs: tuple[TargetSpec, ...]) -> None:
    targets = {**store.config.targets, name: specs}
    cfg = replace(store.config, targets={k: v for k, v in targets.items() if v})
    cfg.write(store.root)
    store.config = cfg


def add_target(store: StoreHandle, name: str, spec: TargetSpec) -> TargetSpec:
    """Configure (or replace) a release target of `name` (`export ... --as-target`).

    Raises:
        NotFound: no such model.
        InvalidInput: the export cannot be rendered with these options (checked now).
    """
    from modelreg.release.export.render import FORMATS, export
    from modelreg.release.ops import status

    if spec.format not in FORMATS:
        raise InvalidInput(
            f"unknown export format {spec.format!r}: use one of {', '.join(FORMATS)}"
        )
    status(store, name)  # NotFound for an unknown model
    try:  # the options the format needs (kserve's --storage-uri...) are checked now
        export(store, name, spec.format, _spec_for(spec).options)
    except NotFound:
        pass  # nothing to route to yet: the target is applied once there is
    with store.locked():
        store.config = StoreConfig.read(store.root)
        kept = tuple(t for t in store.config.targets.get(name, ()) if t.name != spec.name)
        _save(store, name, (*kept, spec))
    return spec


def remove_target(store: StoreHandle, name: str, target: str) -> TargetSpec:
    """Remove a configured target (its last state is forgotten too)."""
    with store.locked():
        store.config = StoreConfig.read(store.root)
        specs = store.config.targets.get(name, ())
        gone = [t for t in specs if t.name == target]
        if not gone:
            raise NotFound(f"{name} has no release target {target!r}")
        _save(store, name, tuple(t for t in specs if t.name != target))
    return gone[0]

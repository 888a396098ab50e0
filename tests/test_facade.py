"""`modelreg.Store`, the facade: one method per CLI command (issue 16).

The library mirrors the CLI as sqlite-utils does: `mreg X` is `store.X(...)`, and
`mreg release X` is `store.release_X(...)`. `COMMANDS` maps every command of the full app
(groups included) to its method; a command added without a method, or a method that does
not exist, fails here. Each facade method keeps the signature of the domain function it
calls (same parameter names, kinds and defaults), and the CLI calls the facade.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from modelreg import Store
from modelreg.cli import build_app
from tests.release.util import SEED, make_model

# command path -> Store method (dotted through an attribute), or None and why it has none
COMMANDS: dict[str, str | None] = {
    "init": "init",
    "register": "register",
    "list": "versions",  # and `models` without filters
    "show": "info",  # and alias_at for `show NAME@ALIAS --at TIME`
    "diff": "diff",
    "get": "get",
    "log": "log",
    "verify": "verify",
    "promote": "promote",
    "rollback": "rollback",
    "history": "history",
    "deprecate": "deprecate",
    "delete": "delete",
    "tag": "tag",
    "sign": "sign",  # signatures.signer + sign, or signatures.attach with --attach
    "policy show": "policy_show",
    "policy gate": "policy_gate",
    "policy trust": "policy_trust",
    "policy allow": "policy_allow",
    "push": "push",
    "pull": "pull",
    "fetch": "fetch",
    "status": "remote_status",
    "pack": "pack",
    "unpack": "unpack",
    "validate": "validate",
    "schema": "schema",
    "check-large-models": "check_large_models",
    "fsck": "fsck",
    "gc": "gc",
    "remote add": "remotes.add",
    "remote list": "remotes.list",
    "remote remove": "remotes.remove",
    "remote default": "remotes.set_default",
    "release start": "release_start",
    "release set": "release_set",
    "release step": "release_step",
    "release pause": "release_pause",
    "release resume": "release_resume",
    "release promote": "release_promote",
    "release abort": "release_abort",
    "release status": "release_status",
    "release history": "release_history",
    "release analyze": "release_analyze",
    "release watch": "release_watch",
    "release export": "release_export",  # and release_export_watch for --watch, and
    # release_export_apply for --exec/--git, release_target_add for --as-target
    "release targets": "release_status",  # (.targets); release_target_remove for --remove
    "release apply": "release_apply",
    "hook add": "hook_add",
    "hook list": "hook_list",
    "hook remove": "hook_remove",
    "hook test": "hook_test",
    "hook deliver": "hook_deliver",
    "data export": "data_export",
    "monitor": "monitor",
    "import mlflow": "import_mlflow",
    "import gto": "import_gto",
    # apps (docs/architecture.md): they are above the facade, not in it
    "demo": None,  # builds its own store in a temporary directory (modelreg.demo.run_demo)
    "ui": None,  # the web view (modelreg.ui), serves a store or a remote
    "report": None,  # the web view's pages as a file (modelreg.ui.report), store or remote
}

# facade method -> the domain function it calls (module, name); the first parameter of the
# domain function (the handle) is the facade itself, except where noted
DOMAIN: dict[str, tuple[str, str]] = {
    "release_start": ("modelreg.release.ops", "start"),
    "release_set": ("modelreg.release.ops", "update"),
    "release_step": ("modelreg.release.ops", "step"),
    "release_pause": ("modelreg.release.ops", "pause"),
    "release_resume": ("modelreg.release.ops", "resume"),
    "release_promote": ("modelreg.release.ops", "promote"),
    "release_abort": ("modelreg.release.ops", "abort"),
    "release_status": ("modelreg.release.targets", "release_status"),
    "release_history": ("modelreg.release.ops", "history"),
    "release_analyze": ("modelreg.analysis", "analyze"),
    "release_watch": ("modelreg.analysis", "watch"),
    "release_export": ("modelreg.release.export", "export"),
    "release_export_watch": ("modelreg.release.export", "watch"),
    "release_export_apply": ("modelreg.release.targets", "apply_once"),
    "release_target_add": ("modelreg.release.targets", "add_target"),
    "release_target_remove": ("modelreg.release.targets", "remove_target"),
    "release_apply": ("modelreg.release.targets", "apply_targets"),
    "alias_at": ("modelreg.aliasat", "alias_at"),
    # (log calls auditquery.entries with model=name, but keeps its positional name and limit)
    "fsck": ("modelreg.fsck", "fsck"),
    "hook_add": ("modelreg.hooks", "add"),
    "hook_list": ("modelreg.hooks", "hooks"),
    "hook_remove": ("modelreg.hooks", "remove"),
    "hook_test": ("modelreg.hooks", "test"),
    "hook_deliver": ("modelreg.hooks", "deliver_now"),
    "import_mlflow": ("modelreg.importing.mlflow", "import_mlflow"),
    "import_gto": ("modelreg.importing.gto", "import_gto"),
    "gc": ("modelreg.gc", "gc"),
    "monitor": ("modelreg.monitoring", "drift_report"),
    "drift_series": ("modelreg.monitoring", "drift_series"),
    "delete": ("modelreg.deletion", "delete"),
    "check_large_models": ("modelreg.validate", "check_large_models"),  # static: no handle
    "validate": ("modelreg.validate", "validate"),  # the store is `store=`, here self
}


def _commands() -> Iterator[str]:
    def walk(command: Any, prefix: tuple[str, ...]) -> Iterator[str]:
        subs = getattr(command, "commands", None)
        if subs is None:
            yield " ".join(prefix)
            return
        for name, sub in subs.items():
            yield from walk(sub, (*prefix, name))

    yield from walk(typer.main.get_command(build_app()), ())


def _method(store: Store, dotted: str) -> Callable[..., Any]:
    target: Any = store
    for part in dotted.split("."):
        target = getattr(target, part)
    assert callable(target), dotted
    return target  # type: ignore[no-any-return]


def test_every_command_has_a_facade_method() -> None:
    commands = sorted(_commands())
    assert "release start" in commands and "remote add" in commands  # groups are walked
    missing = [c for c in commands if c not in COMMANDS]
    assert not missing, f"commands without a Store method (add one, and to COMMANDS): {missing}"
    stale = sorted(set(COMMANDS) - set(commands))
    assert not stale, f"COMMANDS names commands that no longer exist: {stale}"


def test_every_mapped_method_exists_and_is_documented(store: Store) -> None:
    for command, dotted in COMMANDS.items():
        if dotted is None:
            continue
        method = _method(store, dotted)
        assert inspect.getdoc(method), f"Store.{dotted} ({command}) has no docstring"
    for name in ("models", "release_export_watch"):
        assert inspect.getdoc(_method(store, name))


def _params(fn: Callable[..., Any], drop: int) -> list[tuple[str, Any, Any]]:
    params = list(inspect.signature(fn).parameters.values())[drop:]
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize("method", sorted(DOMAIN))
def test_facade_methods_keep_the_domain_signature(method: str) -> None:
    module, name = DOMAIN[method]
    domain = getattr(importlib.import_module(module), name)
    static = isinstance(inspect.getattr_static(Store, method), staticmethod)
    mine = _params(getattr(Store, method), 0 if static else 1)
    theirs = _params(domain, 0 if static else 1)
    if method == "validate":
        theirs = [p for p in _params(domain, 0) if p[0] != "store"]
    assert mine == theirs


# -- behaviour, on a real store ----------------------------------------------------------------


@pytest.fixture
def model(store: Store, tmp_path: Path) -> Store:
    """Model `m`: 1.0.0 (production), 1.1.0, 1.2.0."""
    return make_model(store, tmp_path)


def test_a_release_started_stepped_and_aborted(model: Store) -> None:
    change = model.release_start("m", "1.1.0", steps="1,5,50,100", seed=SEED, reason="try it")
    assert (change.action, change.changed, change.rollout.state) == ("start", True, "progressing")
    assert change.rollout.canary.version == "1.1.0" and change.rollout.baseline.version == "1.0.0"
    assert change.rollout.weight == 100  # hundredths of a percent: 1%

    stepped = model.release_step("m", reason="looks fine")
    assert stepped.rollout.weight == 500
    assert stepped.rollout.generation == change.rollout.generation + 1

    status = model.release_status("m")
    assert status.rollout is not None and status.rollout.weight == 500

    aborted = model.release_abort("m", reason="rolled back")
    assert (aborted.action, aborted.rollout.state) == ("abort", "aborted")
    assert aborted.rollout.weight == 0
    actions = [e.action for e in model.release_history("m")]
    assert actions == ["start", "step", "abort"]
    assert model.resolve("m@production").version == "1.0.0"  # production never moved


def test_release_set_pause_resume_promote(model: Store) -> None:
    model.release_start("m", "1.2.0", weight=10, seed=SEED)
    assert model.release_set("m", weight="25").rollout.weight == 2500
    assert model.release_pause("m").rollout.state == "paused"
    assert model.release_resume("m").rollout.state == "progressing"
    promoted = model.release_promote("m", reason="good")
    assert promoted.promotion is not None and promoted.promotion.version == "1.2.0"
    assert model.resolve("m@production").version == "1.2.0"


def test_release_export_istio(model: Store) -> None:
    model.release_start("m", "1.1.0", weight=5, seed=SEED)
    result = model.release_export("m", "istio")
    assert result.losses == ()
    kinds = [doc["kind"] for doc in result.documents]
    assert kinds == ["VirtualService", "DestinationRule"]
    text = result.yaml().decode()
    assert "weight: 5" in text and "weight: 95" in text


def test_fsck_on_a_clean_store(model: Store) -> None:
    report = model.fsck()
    assert report.ok and not report.errors and not report.warnings
    assert report.versions == 3 and report.hashed == report.objects == 3
    assert model.fsck(quick=True).hashed == 0


def test_gc_dry_run_removes_nothing(model: Store) -> None:
    orphan = model.objects.put_bytes(b"nobody names me")
    report = model.gc(grace=0, dry_run=True)
    assert report.dry_run and [d for d, _ in report.removed] == [orphan]
    assert model.objects.has(orphan)
    assert model.gc(grace=0).removed == report.removed
    assert not model.objects.has(orphan)


def test_validate_check_large_models_and_schema(model: Store, tmp_path: Path) -> None:
    report = model.validate()
    assert report.ok and len(report.files) >= 3
    big = tmp_path / "big.onnx"
    big.write_bytes(b"x" * 2048)
    large = Store.check_large_models([big], max_size=1024)
    assert [(Path(f.file).name, f.size) for f in large.large] == [("big.onnx", 2048)]
    assert Store.check_large_models([big]).large == ()
    assert Store.schema("Rollout")["type"] == "object"


# -- the CLI calls the facade --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "method"),
    [
        (["release", "step", "m"], "release_step"),
        (["release", "abort", "m", "--reason", "no"], "release_abort"),
        (["release", "status", "m"], "release_status"),
        (["release", "export", "m", "-f", "istio"], "release_export"),
        (["fsck", "--quick"], "fsck"),
        (["gc", "--dry-run"], "gc"),
    ],
)
def test_the_cli_goes_through_the_facade(
    model: Store,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    method: str,
) -> None:
    from modelreg.cli import main

    model.release_start("m", "1.1.0", weight=5, seed=SEED)
    calls: list[str] = []
    real = getattr(Store, method)

    def spy(self: Store, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Store, method, spy)
    monkeypatch.chdir(model.root.parent)
    try:
        main(argv)
    except SystemExit as exc:  # a standalone Typer app exits 0 when done
        assert exc.code in (0, None), capsys.readouterr()
    assert calls == [method]
    out = capsys.readouterr().out
    assert "VirtualService" in out if method == "release_export" else out

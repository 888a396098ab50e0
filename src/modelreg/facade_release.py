"""The release commands of the `Store` facade: `mreg release CMD` is `store.release_CMD(...)`.

Facade layer (docs/architecture.md): each method is a lazy import of the domain function
(`release.ops`, `analysis.watch`, `release.export`) and one call with its signature, so the
library mirrors the CLI (tests/test_facade.py checks the signatures). `Store` inherits them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.handle import StoreHandle

if TYPE_CHECKING:
    from modelreg.analysis.watch import Analysis, Source, WatchEvent, WatchReport
    from modelreg.release.export.plan import Export, ExportOptions
    from modelreg.release.export.watch import WatchReport as ExportWatchReport
    from modelreg.release.ops import ReleaseChange, ReleaseStatus
    from modelreg.release.rollout import Event
    from modelreg.release.rules import Rule
    from modelreg.release.targets import Applied
    from modelreg.release.targetspec import TargetSpec

__all__ = ["ReleaseCommands"]


class ReleaseCommands(StoreHandle):
    """`release start|set|step|pause|resume|promote|abort|status|history|analyze|watch|export`."""

    # -- releases (issues 5, 6, 7): `mreg release CMD` is `store.release_CMD(...)` ------------

    def release_start(
        self,
        name: str,
        canary: str,
        *,
        baseline: str | None = None,
        weight: float | str | None = None,
        steps: str | Sequence[float | str] | None = None,
        stick_by: str = "user_id",
        rules: Sequence[Rule | str] = (),
        shadow: bool = False,
        reason: str = "",
        seed: str | None = None,
        actor: str | None = None,
        analysis: Sequence[Any] = (),
    ) -> ReleaseChange:
        """Start a canary release of `canary` against `baseline` (`mreg release start`).

        The baseline defaults to the `production` alias; the first weight is `weight`, else
        the plan's first step. `rules` are routing rules (texts or `Rule`s), `analysis` the
        checks and policy `release analyze` and `watch` judge by (`modelreg.release.ops.start`).
        """
        from modelreg.release.ops import start

        return start(
            self, name, canary, baseline=baseline, weight=weight, steps=steps,
            stick_by=stick_by, rules=rules, shadow=shadow, reason=reason, seed=seed,
            actor=actor, analysis=analysis,
        )  # fmt: skip

    def release_set(
        self,
        name: str,
        *,
        weight: float | str | None = None,
        rules: Sequence[Rule | str] | None = None,
        shadow: bool | None = None,
        analysis: Sequence[Any] | None = None,
        reason: str = "",
        actor: str | None = None,
    ) -> ReleaseChange:
        """Set the canary weight, replace the rules or checks, or go to shadow mode.

        `mreg release set` (`modelreg.release.ops.update`): None leaves a setting as it is,
        `rules=[]` removes every rule and `analysis=[]` every check.
        """
        from modelreg.release.ops import update

        return update(
            self, name, weight=weight, rules=rules, shadow=shadow, analysis=analysis,
            reason=reason, actor=actor,
        )  # fmt: skip

    def release_step(
        self, name: str, *, reason: str = "", actor: str | None = None
    ) -> ReleaseChange:
        """Move the canary to the next weight of the step plan (`mreg release step`)."""
        from modelreg.release.ops import step

        return step(self, name, reason=reason, actor=actor)

    def release_pause(
        self, name: str, *, reason: str = "", actor: str | None = None
    ) -> ReleaseChange:
        """Freeze the release: traffic keeps its split, set and step are refused (`pause`)."""
        from modelreg.release.ops import pause

        return pause(self, name, reason=reason, actor=actor)

    def release_resume(
        self, name: str, *, reason: str = "", actor: str | None = None
    ) -> ReleaseChange:
        """Resume a paused release (`mreg release resume`)."""
        from modelreg.release.ops import resume

        return resume(self, name, reason=reason, actor=actor)

    def release_promote(
        self, name: str, *, reason: str = "", force: bool = False, actor: str | None = None
    ) -> ReleaseChange:
        """Move production to the canary, through its promotion gates, and end the release.

        `mreg release promote`; `force` (with a `reason`) overrides failed gates.
        """
        from modelreg.release.ops import promote

        return promote(self, name, reason=reason, force=force, actor=actor)

    def release_abort(
        self, name: str, *, reason: str = "", force: bool = False, actor: str | None = None
    ) -> ReleaseChange:
        """Roll back now: all traffic to the baseline, and the release ends (`release abort`).

        `force` (with a `reason`) aborts even over a damaged rollout manifest.
        """
        from modelreg.release.ops import abort

        return abort(self, name, reason=reason, force=force, actor=actor)

    def release_status(self, name: str) -> ReleaseStatus:
        """The release's state, weights, rules, steps, generation, last changes and targets."""
        from modelreg.release.targets import release_status

        return release_status(self, name)

    def release_history(self, name: str) -> list[Event]:
        """Every change of every release of the model, oldest first (`release history`)."""
        from modelreg.release.ops import history

        return history(self, name)

    def release_analyze(self, name: str, *, source: Source | None = None) -> Analysis:
        """Judge the canary against the baseline on its metrics (`mreg release analyze`).

        `source` reads the metrics (default: the store's `metrics/`; `PrometheusSource`).
        """
        from modelreg.analysis import analyze

        return analyze(self, name, source=source)

    def release_watch(
        self,
        name: str,
        *,
        interval_s: float = 30.0,
        max_duration_s: float | None = None,
        once: bool = False,
        promote: bool = True,
        source: Source | None = None,
        actor: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_event: Callable[[WatchEvent], None] | None = None,
    ) -> WatchReport:
        """Analyze every `interval_s`: abort on a failure, step after passes, then promote.

        `mreg release watch`; `on_event` is called after each analysis.
        """
        from modelreg.analysis import watch

        return watch(
            self, name, interval_s=interval_s, max_duration_s=max_duration_s, once=once,
            promote=promote, source=source, actor=actor, clock=clock, sleep=sleep,
            on_event=on_event,
        )  # fmt: skip

    def release_export(
        self, name: str, format: str, options: ExportOptions | None = None
    ) -> Export:
        """The release's routing as Kubernetes YAML for a mesh or gateway (`release export`).

        `format`: istio, gateway-api, smi, nginx, kserve or argo. The result lists what the
        format cannot express (`Export.losses`); `raise_for_losses()` refuses them.
        """
        from modelreg.release.export import export

        return export(self, name, format, options)

    def release_export_watch(
        self,
        name: str,
        format: str,
        options: ExportOptions | None,
        output: Path,
        *,
        interval_s: float = 1.0,
        max_duration_s: float | None = None,
        max_writes: int | None = None,
        on_write: Callable[[Export], None] | None = None,
        apply: TargetSpec | None = None,
        on_apply_error: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> ExportWatchReport:
        """Keep `output` current: rewrite the export on every change (`export --watch`).

        `apply` (a target with `exec`/`git`) also applies each change (`--exec`, `--git`).
        """
        from modelreg.release.export import watch

        return watch(
            self, name, format, options, output, interval_s=interval_s,
            max_duration_s=max_duration_s, max_writes=max_writes, on_write=on_write,
            apply=apply, on_apply_error=on_apply_error, clock=clock, sleep=sleep,
        )  # fmt: skip

    def release_export_apply(self, name: str, spec: TargetSpec) -> Applied:
        """Write and apply the export once (`export --output ... --exec/--git`), unrecorded."""
        from modelreg.release.targets import apply_once

        return apply_once(self, name, spec)

    def release_target_add(self, name: str, spec: TargetSpec) -> TargetSpec:
        """Configure a release target (`release export ... --as-target NAME`)."""
        from modelreg.release.targets import add_target

        return add_target(self, name, spec)

    def release_target_remove(self, name: str, target: str) -> TargetSpec:
        """Remove a configured release target (`release targets NAME --remove TARGET`)."""
        from modelreg.release.targets import remove_target

        return remove_target(self, name, target)

    def release_apply(self, name: str, only: Sequence[str] = ()) -> list[Applied]:
        """Apply the current routing to the model's targets now (`release apply`)."""
        from modelreg.release.targets import apply_targets

        return apply_targets(self, name, only)

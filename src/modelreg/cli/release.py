"""`mreg release start|set|step|pause|resume|promote|abort|status|history|analyze|watch`.

Issues 5 and 6. Each command is one call of the facade, `Store.release_CMD` (which calls
`modelreg.release.ops`, where `set` is `ops.update`, or `modelreg.analysis` for `analyze` and
`watch`); this module only parses options and prints results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from modelreg.cli import export, targets
from modelreg.cli._analysis import render_analysis
from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.analysis import WatchEvent
    from modelreg.release.ops import ReleaseChange, ReleaseStatus

__all__ = ["install", "release_app"]

release_app = typer.Typer(
    name="release",
    help="Canary releases: send a share of traffic to a new version, step it up, promote or "
    "abort, and let analysis judge it. Refused transitions exit 1 with the reason.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(help="Model name.")]
ReasonOpt = Annotated[
    str, typer.Option("--reason", "-r", help="Why (recorded in the release history and audit).")
]
WeightOpt = Annotated[
    Optional[str],  # noqa: UP045 (Typer needs Optional on Python 3.10)
    typer.Option("--weight", "-w", help="Canary share in percent, 0-100, down to 0.01."),
]
RulesOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--rule",
        help="Routing rule, in order (repeatable): 'COND [and COND] -> canary|baseline|P%'; "
        "COND is key=value, 'key in a,b' or key^=prefix; 'user_id in u1,u2' pins users.",
    ),
]
RulesFileOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--rules-file", help="YAML/JSON list of rules (added after any --rule)."),
]


def _rules(rule: list[str] | None, rules_file: Path | None) -> list[Any] | None:
    if rule is None and rules_file is None:
        return None
    from modelreg.release.ops import read_rules_file

    out: list[Any] = list(rule or [])
    if rules_file is not None:
        out.extend(read_rules_file(rules_file))
    return out


CheckOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--check",
        help="Analysis check (repeatable): '[NAME:] METRIC OP LIMIT', e.g. 'error_rate <= "
        "baseline + 0.5pt', 'latency.p99 <= 1.2x baseline', 'conversion >= baseline' "
        "(docs/analysis.md). Default: error rate and p99 latency against the baseline.",
    ),
]
ChecksFileOpt = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--checks-file", help="YAML/JSON checks and policy (added after --check)."),
]


def _checks(check: list[str] | None, checks_file: Path | None) -> list[Any] | None:
    if check is None and checks_file is None:
        return None
    out: list[Any] = list(check or [])
    if checks_file is not None:
        from modelreg.analysis.checks import read_checks_file

        out.extend(read_checks_file(checks_file))
    return out


def _pct(value: int | float) -> str:
    return f"{value:g}%"


def _render_status(c: Console, st: ReleaseStatus, changes: bool = True) -> None:
    from rich.markup import escape
    from rich.table import Table

    doc = st.to_dict()
    if st.rollout is None:
        prod = st.production or "no production alias"
        c.print(f"{st.model}: no release (production: {prod})")
        targets.render_targets(c, list(st.targets))
        return
    r = st.rollout
    shadow = " [magenta]shadow mode[/]" if r.shadow else ""
    c.print(
        f"[bold]{st.model}[/] release {r.release}: [bold]{r.state}[/]{shadow}, generation "
        f"{r.generation}, sticky by {r.stick_by}"
    )
    for side in ("baseline", "canary"):
        s = doc[side]
        c.print(f"  {side:<8} {s['version']:<14} {s['id'][:12]}  {_pct(s['weight']):>7}")
    c.print("Routing (first match wins):")
    for line in st.routing():
        c.print(f"  {escape(line)}")
    steps = doc["steps"]
    plan = " ".join(
        f"[green]{s if isinstance(s, str) else _pct(s)}[/]"
        if s in steps["done"]
        else (s if isinstance(s, str) else _pct(s))
        for s in steps["plan"]
    )
    nxt = "-" if steps["next"] is None else _pct(steps["next"])
    c.print(f"Steps: {plan}   (done in green; next: {nxt})")
    if doc["analysis"]:
        c.print(f"Analysis checks: {len(doc['analysis'])}")
    targets.render_targets(c, list(st.targets))
    if not changes:
        return
    t = Table(title="Last changes")
    for col in ("gen", "time", "action", "state", "weight", "actor", "reason"):
        t.add_column(col)
    for e in doc["last_changes"]:
        t.add_row(
            str(e["generation"]), e["time"], e["action"], e["state"], _pct(e["weight"]),
            escape(e["actor"]), escape(e["reason"]) or "-",
        )  # fmt: skip
    c.print(t)


def _show_change(change: ReleaseChange, as_json: bool) -> None:
    def render(c: Console) -> None:
        r = change.rollout
        if not change.changed:
            c.print(f"{r.model}: release {r.release} unchanged (already so); nothing to do")
        else:
            c.print(
                f"{r.model}: release {r.release} {change.action}: {change.previous_state} → "
                f"[bold]{r.state}[/], generation {r.generation}"
            )
        if change.recovery is not None:
            from rich.markup import escape

            rec = change.recovery
            c.print(
                f"[bold red]forced over a damaged manifest[/]: {escape(rec.damage)}\n"
                f"  baseline {r.baseline.version} from {rec.baseline_from}, canary "
                f"{r.canary.version} from {rec.canary_from}; {rec.events_recovered} history "
                f"event(s) recovered; written above generation {rec.max_generation}"
            )
        if change.promotion is not None:
            p = change.promotion
            c.print(f"production → [bold]{p.version}[/] (was {p.previous or '-'})")
        _render_status(c, change.status, changes=False)

    Output(as_json).result(change.to_dict(), render)


@release_app.command()
def start(
    name: NameArg,
    canary: Annotated[str, typer.Option("--canary", help="The version to release.")],
    baseline: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--baseline", help="Version or alias it competes with (default: production)."),
    ] = None,
    weight: WeightOpt = None,
    steps: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--steps",
            help="Step plan in percent, e.g. 1,5,10,25,50,100; 'shadow' may come first "
            "(default 1,5,10,25,50,100).",
        ),
    ] = None,
    stick_by: Annotated[
        str, typer.Option("--stick-by", help="Request attribute that keeps a user on one side.")
    ] = "user_id",
    rule: RulesOpt = None,
    rules_file: RulesFileOpt = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow", help="Start in shadow mode: the baseline answers, the canary mirrors."
        ),
    ] = False,
    check: CheckOpt = None,
    checks_file: ChecksFileOpt = None,
    reason: ReasonOpt = "",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a canary release of a version against the baseline (default: production)."""
    change = open_store(store).release_start(
        name, canary, baseline=baseline, weight=weight, steps=steps,
        stick_by=stick_by, rules=_rules(rule, rules_file) or (), shadow=shadow, reason=reason,
        analysis=_checks(check, checks_file) or (),
    )  # fmt: skip
    _show_change(change, as_json)


@release_app.command("set")
def set_(
    name: NameArg,
    weight: WeightOpt = None,
    rule: RulesOpt = None,
    rules_file: RulesFileOpt = None,
    no_rules: Annotated[bool, typer.Option("--no-rules", help="Remove every rule.")] = False,
    shadow: Annotated[
        bool,
        typer.Option("--shadow", help="Go to shadow mode (no live canary traffic, mirror all)."),
    ] = False,
    check: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--check",
            help="Replace the analysis checks (repeatable), as 'release start --check' takes "
            "them: '[NAME:] METRIC OP LIMIT' (docs/analysis.md).",
        ),
    ] = None,
    checks_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--checks-file",
            help="YAML/JSON checks (added after --check) and policy; a policy given replaces "
            "the release's, otherwise it is kept.",
        ),
    ] = None,
    no_checks: Annotated[
        bool,
        typer.Option("--no-checks", help="Remove every check: the default checks apply again."),
    ] = False,
    reason: ReasonOpt = "",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the canary weight, replace the rules or the analysis checks, or go to shadow mode."""
    from modelreg.errors import InvalidInput

    rules = _rules(rule, rules_file)
    if no_rules:
        if rules is not None:
            raise InvalidInput("--no-rules cannot be combined with --rule or --rules-file")
        rules = []
    analysis = _checks(check, checks_file)
    if no_checks:
        if analysis is not None:
            raise InvalidInput("--no-checks cannot be combined with --check or --checks-file")
        analysis = []
    change = open_store(store).release_set(
        name, weight=weight, rules=rules, shadow=True if shadow else None,
        analysis=analysis, reason=reason,
    )  # fmt: skip
    _show_change(change, as_json)


@release_app.command()
def step(
    name: NameArg, reason: ReasonOpt = "", store: StoreOpt = None, as_json: JsonOpt = False
) -> None:
    """Move the canary to the next weight of the step plan."""
    _show_change(open_store(store).release_step(name, reason=reason), as_json)


@release_app.command()
def pause(
    name: NameArg, reason: ReasonOpt = "", store: StoreOpt = None, as_json: JsonOpt = False
) -> None:
    """Pause the release: traffic keeps its split, set and step are refused until resume."""
    _show_change(open_store(store).release_pause(name, reason=reason), as_json)


@release_app.command()
def resume(
    name: NameArg, reason: ReasonOpt = "", store: StoreOpt = None, as_json: JsonOpt = False
) -> None:
    """Resume a paused release."""
    _show_change(open_store(store).release_resume(name, reason=reason), as_json)


@release_app.command()
def promote(
    name: NameArg,
    reason: ReasonOpt = "",
    force: Annotated[
        bool, typer.Option("--force", help="Override failed production gates (needs --reason).")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move production to the canary (through its promotion gates) and end the release."""
    change = open_store(store).release_promote(name, reason=reason, force=force)
    _show_change(change, as_json)


@release_app.command()
def abort(
    name: NameArg,
    reason: ReasonOpt = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Abort even when the rollout manifest is damaged: recover the baseline from its "
            "history, the audit trail or production, and write a valid aborted manifest "
            "(needs --reason).",
        ),
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Roll back now: all traffic to the baseline, and the release ends."""
    _show_change(open_store(store).release_abort(name, reason=reason, force=force), as_json)


@release_app.command()
def status(name: NameArg, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show the release: state, weights, routing order, steps, generation, last changes."""
    st = open_store(store).release_status(name)
    Output(as_json).result(st.to_dict(), lambda c: _render_status(c, st))


@release_app.command()
def history(name: NameArg, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show every change of every release of the model."""
    events = open_store(store).release_history(name)

    def render(c: Console) -> None:
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=f"{name} release history")
        for col in ("release", "gen", "time", "action", "state", "weight", "actor", "reason"):
            t.add_column(col)
        for e in events:
            w = "shadow" if e.shadow else _pct(e.to_dict()["weight"])
            t.add_row(
                str(e.release), str(e.generation), e.time, e.action, e.state, w,
                escape(e.actor), escape(e.reason) or "-",
            )  # fmt: skip
        c.print(t)

    Output(as_json).result([e.to_dict() for e in events], render)


PrometheusOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--prometheus",
        help="Read metrics from this Prometheus server (http://host:9090) instead of the store.",
        show_default=False,
    ),
]


QueriesOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--queries",
        help="With --prometheus: PromQL templates for this run, a preset (mreg, istio, "
        "linkerd) or a YAML/JSON file (default: the release's own).",
        show_default=False,
    ),
]


def _source(prometheus: str | None, queries: str | None = None) -> Any:
    if prometheus is None:
        if queries is not None:
            from modelreg.errors import InvalidInput

            raise InvalidInput("--queries needs --prometheus URL: the queries run there")
        return None
    from modelreg.analysis.promql import prometheus_source

    return prometheus_source(prometheus, queries)


@release_app.command()
def analyze(
    name: NameArg,
    prometheus: PrometheusOpt = None,
    queries: QueriesOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Judge the canary against the baseline. Exit 0 pass, 1 fail, 3 inconclusive."""
    from modelreg.analysis import Inconclusive

    result = open_store(store).release_analyze(name, source=_source(prometheus, queries))

    def render(c: Console) -> None:
        render_analysis(c, result)
        if result.verdict == "inconclusive":
            from rich.markup import escape

            c.print(
                f"{escape(result.model)} release {result.release}: {escape(result.summary())} "
                "(exit 3: analyze again when more traffic is in)"
            )

    Output(as_json).result(result.to_dict(), render)
    if result.verdict == "inconclusive":
        raise typer.Exit(Inconclusive.exit_code)  # a result, not an error: the table says why
    result.raise_for_verdict()


@release_app.command()
def watch(
    name: NameArg,
    interval: Annotated[
        str, typer.Option("--interval", help="Time between analyses: 30s, 5m...")
    ] = "30s",
    max_duration: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--max-duration", help="Stop watching (release unchanged) after this: 2h..."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Analyze and act once, then exit (cron, CI).")
    ] = False,
    no_promote: Annotated[
        bool,
        typer.Option("--no-promote", help="After the last step, stop for a manual promotion."),
    ] = False,
    prometheus: PrometheusOpt = None,
    queries: QueriesOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Analyze repeatedly: abort on a failure, step up after passes, promote at the end.

    Applies each change to the model's release targets first, and judges only once every
    target runs the generation in force. Exits 1 when it rolled the release back or stopped
    waiting for a target that failed to apply, 0 otherwise.
    """
    from modelreg.analysis import CheckFailed
    from modelreg.analysis.watch import parse_duration

    out = Output(as_json)

    def progress(e: WatchEvent) -> None:
        out.note(
            f"{e.time} gen {e.generation} {e.weight:g}%: {e.verdict} -> {e.action}: {e.summary}"
        )

    report = open_store(store).release_watch(
        name, interval_s=parse_duration(interval),
        max_duration_s=None if max_duration is None else parse_duration(max_duration),
        once=once, promote=not no_promote, source=_source(prometheus, queries),
        on_event=progress,
    )  # fmt: skip

    def render(c: Console) -> None:
        c.print(
            f"{report.model} release {report.release}: {report.outcome} after "
            f"{len(report.events)} analyses (state {report.state})"
        )

    out.result(report.to_dict(), render)
    if report.aborted:
        raise CheckFailed(f"{name}: rolled back: {report.events[-1].summary}")
    if report.events and report.events[-1].action == "wait":
        from modelreg.release.targets import ApplyFailed

        raise ApplyFailed(f"{name}: not judged: {report.events[-1].summary}")


export.install(release_app)
targets.install(release_app)


def install(app: typer.Typer) -> None:
    """Add the `release` command group to the app."""
    app.add_typer(release_app, name="release")

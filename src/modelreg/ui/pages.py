"""What each page shows, as plain data for the templates. Reads a `View`; never writes.

One function per page: `models_page`, `model_page`, `version_page`, `diff_page`,
`audit_page`, `release_page`. An unknown model, version or ref raises `NotFound`, which
the server turns into a 404 page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelreg.catalog import flatten
from modelreg.declared import flat
from modelreg.errors import InvalidInput, NotFound
from modelreg.manifest import ModelVersion
from modelreg.names import parse_ref
from modelreg.release.bucketing import FULL, format_weight
from modelreg.ui.release import Memo, release_charts
from modelreg.ui.views import View

__all__ = [
    "MAX_VERSIONS_LISTED",
    "OTHERS_LISTED",
    "PAGE_SIZE",
    "audit_page",
    "diff_page",
    "model_page",
    "models_page",
    "release_page",
    "resolve",
    "version_page",
]

MAX_VERSIONS_LISTED = 12
"""The model list shows this many of a model's newest versions."""
PAGE_SIZE = 100
"""The model page shows this many versions at a time, newest first (`?page=N`, `?offset=N`)."""
MAX_PAGE_SIZE = 1000
"""The most versions one model page shows (`?limit=N`)."""
OTHERS_LISTED = 20
"""A version's card offers a diff against this many of the newest other versions."""


@dataclass(frozen=True)
class ReleaseSummary:
    """A release at a glance (model list, model page)."""

    state: str
    release: int
    baseline: str
    canary: str
    weight: str
    shadow: bool


def _summary(view: View, name: str) -> ReleaseSummary | None:
    r = view.rollout(name)
    if r is None:
        return None
    return ReleaseSummary(
        r.state, r.release, r.baseline.version, r.canary.version,
        f"{format_weight(r.canary_share)}%", r.shadow,
    )  # fmt: skip


def models_page(view: View) -> dict[str, Any]:
    """Every model: versions, latest, aliases, release state."""
    rows = []
    for name in view.model_names():
        versions = view.version_names(name)
        latest = view.manifest(name, versions[-1]) if versions else None
        rows.append(
            {
                "name": name,
                "count": len(versions),
                "versions": versions[::-1][:MAX_VERSIONS_LISTED],
                "latest": latest,
                "aliases": {a.alias: a.version for a in view.aliases(name)},
                "release": _summary(view, name),
            }
        )
    return {"models": rows, "source": view.label}


def resolve(view: View, spec: str) -> ModelVersion:
    """The version `NAME[@REF]` names (version, alias or latest); NotFound otherwise."""
    try:
        ref = parse_ref(spec.strip())
    except InvalidInput as exc:
        raise NotFound(str(exc)) from None
    if ref.kind == "latest":
        return view.manifest(ref.name, view.latest(ref.name))
    view.check_model(ref.name)
    if ref.kind == "version":
        return view.require_version(ref.name, ref.ref)
    for a in view.aliases(ref.name):
        if a.alias == ref.ref:
            return view.require_version(ref.name, a.version)
    raise NotFound(f"{spec}: no such alias")


def page_window(
    page: str | int | None = None, offset: str | int | None = None, limit: str | int | None = None
) -> tuple[int, int]:
    """(offset, limit) from a request's `page` (1 is the newest), `offset` and `limit`.

    `offset` wins over `page`; InvalidInput for what is not a whole number in range.
    """

    def number(what: str, text: str | int, low: int, high: int | None = None) -> int:
        try:
            n = int(text)
        except ValueError:
            raise InvalidInput(f"{what}={text!r}: not a whole number") from None
        if n < low or (high is not None and n > high):
            within = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise InvalidInput(f"{what}={n}: must be {within}")
        return n

    size = PAGE_SIZE if limit in (None, "") else number("limit", limit, 1, MAX_PAGE_SIZE)
    if offset not in (None, ""):
        return number("offset", offset, 0), size
    if page not in (None, ""):
        return (number("page", page, 1) - 1) * size, size
    return 0, size


def model_page(view: View, name: str, offset: int = 0, limit: int = PAGE_SIZE) -> dict[str, Any]:
    """A model: one page of its versions (newest first), its aliases, their timeline, release.

    The versions come from `View.version_page`: the local store answers from the index,
    so a page costs the same with 1,000 or 100,000 versions.
    """
    found = view.version_page(name, offset=offset, limit=limit)
    aliases = view.aliases(name)
    rows = [
        {"mv": i.version, "aliases": list(i.aliases), "tags": i.tags, "deprecated": i.deprecated}
        for i in found
    ]
    timeline = sorted(
        (e for a in aliases for e in a.history), key=lambda e: (e.time, e.alias, e.generation)
    )
    total = found.total
    last_start = (total - 1) // limit * limit if total else 0
    return {
        "name": name,
        "rows": rows,
        "aliases": aliases,
        "timeline": timeline[::-1],
        "release": _summary(view, name),
        "paging": {
            "total": total,
            "first": offset + 1 if rows else 0,
            "last": offset + len(rows),
            "offset": offset,
            "limit": limit,
            # past the end, "newer" is the last page that has versions
            "newer": None if offset == 0 else min(max(offset - limit, 0), last_start),
            "older": offset + limit if offset + limit < total else None,
        },
    }


def version_page(view: View, name: str, version: str) -> dict[str, Any]:
    """A version's identity card."""
    mv = view.require_version(name, version)
    tags, deprecated = view.state(name, version)
    splits = sorted(mv.metrics)
    metric_names = sorted({k for s in mv.metrics.values() for k in s})
    return {
        "mv": mv,
        "tags": mv.tags if tags is None else tags,
        "deprecated": deprecated,
        "aliases": [a.alias for a in view.aliases(name) if a.version == version],
        "params": flatten(mv.params),
        "splits": splits,
        "metric_names": metric_names,
        "declared": [  # what the model files declare (issue 20): (file, what, value)
            (*k.rsplit(": ", 1), v)
            for k, v in flat(mv.declared).items()
            if not k.endswith(": format")
        ],
        "others": [v for v in view.newest(name, OTHERS_LISTED + 1) if v != version][:OTHERS_LISTED],
        "models": view.model_names(),
        # a drift page is worth linking when there is a profile or a sample (issue 21)
        "drift": any(d.profile for d in mv.data) or view.has_samples(name, version),
    }


def _side_by_side(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"key": k, "a": a.get(k), "b": b.get(k), "changed": a.get(k) != b.get(k)}
        for k in sorted(a.keys() | b.keys())
    ]


def diff_page(view: View, spec_a: str, spec_b: str) -> dict[str, Any]:
    """Two versions side by side: params, metrics, files, data and code lineage."""
    a, b = resolve(view, spec_a), resolve(view, spec_b)

    def files(mv: ModelVersion) -> dict[str, Any]:
        return {f.path: f"{f.sha256[:12]} ({f.size:,} B)" for f in mv.files}

    def data(mv: ModelVersion) -> dict[str, Any]:
        return {d.uri: (d.sha256[:12] if d.sha256 else "(uri)") for d in mv.data}

    def code(mv: ModelVersion) -> dict[str, Any]:
        return mv.code.to_dict() if mv.code else {}

    def deps(mv: ModelVersion) -> dict[str, Any]:
        if mv.dependencies is None:
            return {}
        d = mv.dependencies
        out: dict[str, Any] = {"python": d.python, "mreg": d.mreg}
        out.update({f"package {p}": "listed" for p in d.packages})
        return out

    def header(mv: ModelVersion) -> dict[str, Any]:
        return {"id": mv.short_id, "created": mv.created, "author": mv.author,
                "message": mv.message}  # fmt: skip

    sections = [
        ("identity", _side_by_side(header(a), header(b))),
        ("params", _side_by_side(flatten(a.params), flatten(b.params))),
        ("metrics", _side_by_side(flatten(a.metrics), flatten(b.metrics))),
        ("files", _side_by_side(files(a), files(b))),
        ("declared by the files", _side_by_side(flat(a.declared), flat(b.declared))),
        ("data lineage", _side_by_side(data(a), data(b))),
        ("code lineage", _side_by_side(code(a), code(b))),
        ("dependencies", _side_by_side(deps(a), deps(b))),
    ]
    changed = sum(1 for _, rows in sections[1:] for r in rows if r["changed"])
    return {"a": a, "b": b, "sections": sections, "changed": changed}


def audit_page(view: View, model: str | None = None) -> dict[str, Any]:
    """The audit trail (newest first), optionally one model's, and its chain verification."""
    if model:
        view.check_model(model)
    report = view.audit()
    entries = [e for e in report.entries if not model or e.model == model]
    return {
        "entries": entries[::-1],
        "problems": report.problems,
        "ok": report.ok,
        "total": len(report.entries),
        "model": model,
    }


def release_page(view: View, name: str, now: float, memo: Memo | None = None) -> dict[str, Any]:
    """A model's release: state, weights and plan, rules in order, analysis, charts.

    `memo` keeps per-file aggregates of the metrics between calls (the server passes one).
    """
    view.check_model(name)
    r = view.rollout(name)
    if r is None:
        return {"name": name, "rollout": None, "token": view.release_token(name)}
    from modelreg.analysis.checks import plan_of
    from modelreg.analysis.judge import format_value

    judgments = view.judgments(name, r.release)
    charts = release_charts(r, view.metric_files(name, r.release), judgments, now, memo)
    checks, policy = plan_of(r.analysis)
    last = judgments[-1] if judgments else None
    return {
        "name": name,
        "rollout": r,
        "share": format_weight(r.canary_share),
        "baseline_share": format_weight(FULL - r.canary_share),
        "plan": [s if isinstance(s, str) else f"{format_weight(s)}%" for s in r.steps],
        "done": {s if isinstance(s, str) else f"{format_weight(s)}%" for s in r.steps_done()},
        "next": None if (n := r.next_step()) is None else f"{format_weight(n)}%",
        "routing": r.routing_order(),
        "rules": list(enumerate(r.rules, 1)),
        "checks": checks,
        "policy": policy,
        "history": [e for e in r.history if e.release == r.release][::-1],
        "earlier": sorted({e.release for e in r.history if e.release != r.release}),
        "charts": charts,
        "last": last,
        "analyses": len(judgments),
        "token": view.release_token(name),
        "fmt": format_value,
    }

"""The entry points of `mreg release export`: `render` and `export`.

`render` is pure (a traffic plan in, one format's documents out); `export` renders the
store's current routing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from modelreg.errors import InvalidInput
from modelreg.release.export import (
    argo,
    flagger,
    gateway_api,
    istio,
    kserve,
    nginx,
    nginx_njs,
    smi,
)
from modelreg.release.export.matching import sticky, variant_header
from modelreg.release.export.plan import (
    Backend,
    Draft,
    Export,
    ExportOptions,
    TrafficPlan,
    plan_of,
)

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle

__all__ = ["DIRECTORY_FORMATS", "FORMATS", "export", "render"]

FORMATS: dict[str, Callable[[TrafficPlan, ExportOptions], Draft]] = {
    "istio": istio.render,
    "gateway-api": gateway_api.render,
    "smi": smi.render,
    "nginx": nginx.render,
    "kserve": kserve.render,
    "argo": argo.render,
    "flagger": flagger.render,
    "nginx-njs": nginx_njs.render,
}
"""Format name → its pure renderer."""
DIRECTORY_FORMATS = frozenset({"nginx-njs"})
"""The formats written as a directory of files rather than Kubernetes documents."""

_NOT_FILES = {"json", "yaml", "text", None}

STICKY_FORMATS = {"istio": "all", "gateway-api": "all", "nginx": "canary"}
"""The formats that route on the variant header with `--sticky`, and which side they keep."""
NO_HEADER_ROUTING = {
    "smi": "an SMI TrafficSplit splits by weight only, it cannot route on a header",
    "kserve": "KServe splits by percentage only, it cannot route on a header",
    "argo": "the Argo Rollouts export writes no route on a header for it",
}
"""Why the other formats cannot be sticky (any other format: it has no header route)."""


def _sticky_loss(format: str, opts: ExportOptions) -> str | None:
    """With `--sticky`: why a format without header routes cannot follow the variant header."""
    header = variant_header(opts)
    if format in STICKY_FORMATS:
        return None
    why = NO_HEADER_ROUTING.get(format, f"the {format} export writes no route on a header")
    return (
        f"--sticky: {why}: requests carrying {header} are split at random like the others "
        "(use istio or gateway-api)"
    )


def _split_note(plan: TrafficPlan, format: str, opts: ExportOptions) -> str:
    """The note of a split that is (partly) random: what the format keeps on one side."""
    keeps = STICKY_FORMATS.get(format) if sticky(plan, opts) else None
    if keeps is None:
        return (
            f"{format} splits each request at random: a user is not kept on one side as mreg's "
            f"routers keep them (by {plan.stick_by})"
        )
    header = variant_header(opts)
    if keeps == "all":
        kept = (
            f"{format} keeps a request on the side its {header} header names (canary or "
            "baseline, set at the edge); a request without it"
        )
    else:
        kept = (
            f"{format} keeps a request on the canary when its {header} header says canary; one "
            "that says baseline, or has no such header,"
        )
    return (
        f"{kept} is split at random, not kept on one side by {plan.stick_by} as mreg's routers "
        "keep it"
    )


def render(plan: TrafficPlan, format: str, options: ExportOptions | None = None) -> Export:
    """The documents of `format` for `plan`, with what the format cannot express.

    Raises:
        InvalidInput: an unknown format, or options the format needs are missing.
    """
    if format not in FORMATS:
        raise InvalidInput(f"unknown export format {format!r}: use one of {', '.join(FORMATS)}")
    opts = options or ExportOptions()
    draft = FORMATS[format](plan, opts)
    notes, losses = list(draft.notes), list(draft.losses)
    if plan.split and not draft.sticky:  # (nginx-njs follows mreg's bucketing itself)
        notes.insert(0, _split_note(plan, format, opts))
    if opts.sticky and not draft.sticky and (loss := _sticky_loss(format, opts)):
        losses.insert(0, loss)
    return Export(
        format, plan.model, plan.generation, tuple(draft.documents), tuple(losses),
        tuple(notes), opts.lossy, tuple(draft.files.items()),
    )  # fmt: skip


def export(
    store: StoreHandle, name: str, format: str, options: ExportOptions | None = None
) -> Export:
    """`mreg release export`: the model's current routing in `format` (see `render`).

    Raises:
        NotFound: no such model, or nothing to route to (no release, no production alias).
        IntegrityError: the rollout manifest is damaged.
        InvalidInput: an unknown format or a missing option.
    """
    from modelreg.catalog import load_version
    from modelreg.refs import read_alias
    from modelreg.release.ops import PRODUCTION, status

    if format not in FORMATS:
        raise InvalidInput(f"unknown export format {format!r}: use one of {', '.join(FORMATS)}")
    st = status(store, name)
    prod = read_alias(store, name, PRODUCTION)
    production = None if prod is None else Backend(prod.version, prod.id)
    versions = (
        {b.version for b in (st.rollout.baseline, st.rollout.canary)} if st.rollout else set()
    )
    if production is not None:
        versions.add(production.version)
    formats: dict[str, str | None] = {}
    for v in versions:
        files = load_version(store, name, v).files
        found = [f.format for f in files if f.format not in _NOT_FILES]
        formats[v] = found[0] if found else (files[0].format if files else None)
    plan = plan_of(name, st.rollout, production, st.production_generation, formats)
    if options is not None and options.prometheus_address and st.rollout and not options.checks:
        options = replace(options, checks=st.rollout.analysis)  # Argo, Flagger: the checks
    return render(plan, format, options)

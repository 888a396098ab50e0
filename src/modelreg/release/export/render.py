"""The entry points of `mreg release export`: `render` and `export`.

`render` is pure (a traffic plan in, one format's documents out); `export` renders the
store's current routing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelreg.errors import InvalidInput
from modelreg.release.export import argo, gateway_api, istio, kserve, nginx, smi
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

__all__ = ["FORMATS", "export", "render"]

FORMATS: dict[str, Callable[[TrafficPlan, ExportOptions], Draft]] = {
    "istio": istio.render,
    "gateway-api": gateway_api.render,
    "smi": smi.render,
    "nginx": nginx.render,
    "kserve": kserve.render,
    "argo": argo.render,
}
"""Format name → its pure renderer."""

_NOT_FILES = {"json", "yaml", "text", None}


def render(plan: TrafficPlan, format: str, options: ExportOptions | None = None) -> Export:
    """The documents of `format` for `plan`, with what the format cannot express.

    Raises:
        InvalidInput: an unknown format, or options the format needs are missing.
    """
    if format not in FORMATS:
        raise InvalidInput(f"unknown export format {format!r}: use one of {', '.join(FORMATS)}")
    opts = options or ExportOptions()
    draft = FORMATS[format](plan, opts)
    notes = list(draft.notes)
    if plan.split:
        notes.insert(
            0,
            f"{format} splits each request at random: a user is not kept on one side as mreg's "
            f"routers keep them (by {plan.stick_by})",
        )
    return Export(
        format, plan.model, plan.generation, tuple(draft.documents), tuple(draft.losses),
        tuple(notes), opts.lossy,
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
    return render(plan, format, options)

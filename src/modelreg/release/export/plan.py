"""What every export renders: the traffic plan, the options, and the result. Pure.

`plan_of` turns a rollout manifest (and the `production` alias) into a `TrafficPlan`: the
version that takes the traffic the canary does not (`stable`), the canary if one is live,
its share, the rules in force and shadow mode, exactly as mreg's own routers route. A format
module turns a plan into Kubernetes documents and lists what it could not express.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelreg import yamlio
from modelreg.errors import InvalidInput, MregError, NotFound
from modelreg.release.bucketing import FULL, format_weight
from modelreg.release.rollout import LIVE, PAUSED, PROMOTED, Rollout
from modelreg.release.rules import Rule, check_attribute

__all__ = [
    "Backend",
    "Draft",
    "Export",
    "ExportOptions",
    "LossyExport",
    "TrafficPlan",
    "dns_label",
    "metadata",
    "plan_of",
]


class LossyExport(MregError):
    """The format cannot express the rollout exactly, and `--lossy` was not given (exit 1)."""


@dataclass(frozen=True)
class Backend:
    """A version traffic goes to: its version string, manifest id and model format."""

    version: str
    id: str
    format: str | None = None

    @property
    def slug(self) -> str:
        """The version as a DNS label: `1.3.0-rc.1` → `v1-3-0-rc-1` (subset and Service names)."""
        return dns_label(f"v{self.version}")


@dataclass(frozen=True)
class TrafficPlan:
    """How a model's traffic is routed now, as mreg's routers route it."""

    model: str
    state: str
    """The release state, or `none` when the model never had a release."""
    release: int
    generation: int
    stable: Backend
    """Takes every request the canary does not: the baseline, or the version a release ended on."""
    canary: Backend | None = None
    """The live canary (None once the release ended, or without a release)."""
    weight: int = 0
    """The canary's share of requests no rule matched, in hundredths of a percent."""
    rules: tuple[Rule, ...] = ()
    mirror: bool = False
    """Shadow mode: the stable version answers everything and the canary gets a copy."""
    steps: tuple[int | str, ...] = ()
    stick_by: str = "user_id"
    seed: str = ""
    """The release's bucketing seed ("" without a release)."""
    ended_on_canary: bool = False
    """The release was promoted and production has not moved since: `stable` is its canary
    (mreg's routers report these requests as the canary's)."""

    @property
    def paused(self) -> bool:
        """True while the release is paused."""
        return self.state == PAUSED

    @property
    def split(self) -> bool:
        """True when some requests go to each side (by the weight or a percentage rule)."""
        if self.canary is None or self.mirror:
            return False
        return 0 < self.weight < FULL or any(r.weight is not None for r in self.rules)


def plan_of(
    model: str,
    rollout: Rollout | None,
    production: Backend | None = None,
    production_generation: int = 0,
    formats: Mapping[str, str | None] | None = None,
) -> TrafficPlan:
    """The traffic plan of `model` from its rollout manifest (None: it never had a release).

    `production` is the `production` alias's target and `production_generation` its
    generation: after a release ended, a later move of production takes over routing, as in
    `mreg release status`. `formats` maps versions to their model format (for KServe).

    Raises:
        NotFound: there is no release and no production version to route to.
    """
    fmt = formats or {}

    def backend(version: str, id: str) -> Backend:
        return Backend(version, id, fmt.get(version))

    if rollout is None:
        if production is None:
            raise NotFound("nothing to route to: no release and no production alias")
        return TrafficPlan(model, "none", 0, 0, backend(production.version, production.id))
    base = backend(rollout.baseline.version, rollout.baseline.id)
    can = backend(rollout.canary.version, rollout.canary.id)
    common: dict[str, Any] = {
        "model": rollout.model, "state": rollout.state, "release": rollout.release,
        "generation": rollout.generation, "steps": rollout.steps, "stick_by": rollout.stick_by,
        "seed": rollout.seed,
    }  # fmt: skip
    if rollout.state in LIVE:
        return TrafficPlan(
            stable=base, canary=can, weight=rollout.canary_share,
            rules=() if rollout.shadow else rollout.rules, mirror=rollout.shadow, **common,
        )  # fmt: skip
    moved = production is not None and production_generation > (rollout.production_generation or 0)
    if moved:
        assert production is not None
        return TrafficPlan(stable=backend(production.version, production.id), **common)
    promoted = rollout.state == PROMOTED
    return TrafficPlan(stable=can if promoted else base, ended_on_canary=promoted, **common)


_LABEL_BAD = re.compile(r"[^a-z0-9-]+")


def dns_label(text: str) -> str:
    """`text` as a DNS-1123 label (lowercase letters, digits, '-'; at most 63 characters)."""
    label = _LABEL_BAD.sub("-", text.lower()).strip("-")[:63].rstrip("-")
    if not label:
        raise InvalidInput(f"cannot make a Kubernetes name from {text!r}")
    return label


@dataclass(frozen=True)
class ExportOptions:
    """Where the exported resources point, and how request attributes travel as headers."""

    service: str | None = None
    """The Kubernetes Service of the model (default: the model name as a DNS label)."""
    namespace: str | None = None
    port: int | None = None
    """The Services' port (Gateway API and Ingress backends need one: default 80)."""
    host: str | None = None
    """The external host name (Ingress rules, HTTPRoute hostnames, VirtualService hosts)."""
    gateway: str | None = None
    """A Gateway to attach to (HTTPRoute parentRef, VirtualService gateways); default: mesh."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Attribute → request header, over the default `x-<attribute>`; "" means no header."""
    version_label: str = "version"
    """The pod label that tells versions apart (Istio subsets, Argo pod template)."""
    storage_uri: str | None = None
    """KServe: where a version's files are, with {model}, {version}, {id}, {service}."""
    model_format: str | None = None
    """KServe: the model format name, over the one detected from the version's files."""
    image: str = "{service}:{version}"
    """Argo Rollouts: the container image, with {model}, {version}, {id}, {service}."""
    traffic_router: str | None = None
    """Argo Rollouts, Flagger: the router that splits traffic (istio, nginx, gateway-api)."""
    prometheus_address: str | None = None
    """Argo Rollouts, Flagger: export the release's checks as queries against this Prometheus."""
    checks: tuple[Any, ...] = ()
    """Argo Rollouts, Flagger: the release's `analysis` list (checks, policy, queries); `export`
    fills it in from the rollout manifest (empty: the default checks)."""
    upstreams: Mapping[str, str] = field(default_factory=dict)
    """nginx-njs: version → `HOST:PORT` of its model server (`*` for a template with
    {version}, {slug}, {model}, {service}: every version without its own)."""
    listen: str = "127.0.0.1:8080"
    """nginx-njs: the address the gateway's server listens on."""
    directory: str | None = None
    """nginx-njs: the absolute directory the files are written to (nginx reads them there)."""
    lossy: bool = False
    """Export what can be expressed instead of failing on what cannot."""
    sticky: bool = False
    """Istio, Gateway API (ingress-nginx partly): route on the variant header set at the edge."""
    variant_header: str = "x-mreg-variant"
    """The request header naming the side the edge chose (`canary` or `baseline`)."""

    def service_for(self, plan: TrafficPlan) -> str:
        """The model's Service name."""
        return dns_label(self.service or plan.model.replace("/", "-"))

    def backend_service(self, plan: TrafficPlan, b: Backend) -> str:
        """The Service of one version: `<service>-<version slug>`, e.g. `fraud-v1-3-0`."""
        return dns_label(f"{self.service_for(plan)}-{b.slug}")

    def header(self, attribute: str) -> str | None:
        """The request header that carries `attribute` (None: it travels in no header)."""
        check_attribute(attribute)
        if attribute in self.headers:
            return self.headers[attribute].strip().lower() or None
        return "x-" + re.sub(r"[_.]", "-", attribute.lower())

    def fill(self, template: str, plan: TrafficPlan, b: Backend) -> str:
        """A template with {model}, {version}, {id} and {service} filled in."""
        try:
            return template.format(
                model=plan.model, version=b.version, id=b.id, service=self.service_for(plan)
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidInput(
                f"invalid template {template!r}: use {{model}}, {{version}}, {{id}}, {{service}}"
                f" ({exc})"
            ) from None


def metadata(plan: TrafficPlan, opts: ExportOptions, name: str) -> dict[str, Any]:
    """Object metadata: name, namespace, and annotations saying which release it applies."""
    annotations = {
        "mreg/model": plan.model,
        "mreg/state": plan.state,
        "mreg/release": str(plan.release),
        "mreg/generation": str(plan.generation),
        "mreg/stable": plan.stable.version,
    }
    if plan.canary is not None:
        annotations["mreg/canary"] = plan.canary.version
        annotations["mreg/canary-weight"] = f"{format_weight(plan.weight)}"
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "mreg"},
        "annotations": annotations,
    }
    if opts.namespace:
        meta["namespace"] = dns_label(opts.namespace)
    return meta


@dataclass
class Draft:
    """What a format module renders: documents, what it could not express, and remarks."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    """File name → content, for a format written as a directory (`nginx-njs`)."""
    sticky: bool = False
    """The format keeps a user on one side (it follows mreg's bucketing)."""


@dataclass(frozen=True)
class Export:
    """The Kubernetes documents of one format for a model's current routing."""

    format: str
    model: str
    generation: int
    documents: tuple[dict[str, Any], ...]
    losses: tuple[str, ...] = ()
    """What the format cannot express (the export fails on these unless `lossy`)."""
    notes: tuple[str, ...] = ()
    """Differences worth knowing that are not failures (e.g. the split is not sticky)."""
    lossy: bool = False
    files: tuple[tuple[str, bytes], ...] = ()
    """(file name, content) of a format written as a directory (`nginx-njs`), in the order
    they are written; empty for the formats that are YAML documents."""

    def yaml(self) -> bytes:
        """The documents as one multi-document YAML stream."""
        return b"---\n".join(yamlio.dump(d) for d in self.documents)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release export`."""
        return {
            "format": self.format,
            "model": self.model,
            "generation": self.generation,
            "documents": list(self.documents),
            "losses": list(self.losses),
            "notes": list(self.notes),
        }

    def raise_for_losses(self) -> None:
        """Raise LossyExport (exit 1) when something is lost and `lossy` was not asked for."""
        if self.losses and not self.lossy:
            raise LossyExport(
                f"{self.format} cannot express {len(self.losses)} part(s) of the release of "
                f"{self.model} (listed above); nothing was exported. Use another format, "
                "change the release, or pass --lossy to export the rest"
            )

"""nginx with its JavaScript module (njs): a sticky API gateway on mreg's bucketing contract.

The export is a directory of four files, to `include` inside nginx's `http {}` block:

- `mreg.conf`: upstreams, the njs import, the variables, a server on `listen` (rewritten
  when upstreams, the listen address or shadow mode change);
- `mreg.js`: the router in njs (`gateway/mreg.js`, filled in per model);
- `routing.json`: the routing table: seed, weight, rules, the versions' upstreams (every
  generation);
- `fallback.json`: the last table mreg validated, which the gateway follows when
  `routing.json` is damaged.

The gateway routes each request as `Router.route()` does for the same user and attributes:
the user ID comes from a header (`x-user-id`, `--key-header`), rule attributes from headers
named as in the mesh exports (`x-region`...), the bucket from SHA-256 of `SEED:KEY`. Every
proxied request and its response carry `X-Mreg-Variant` and `X-Mreg-Version`. In shadow mode
the baseline answers and nginx's `mirror` sends the canary a copy (`X-Mreg-Variant: shadow`).

Pure: `render(plan, options)`; the files are written by `export.watch.write`.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.release.bucketing import BUCKETS_PER_HUNDREDTH
from modelreg.release.export.matching import describe
from modelreg.release.export.plan import Backend, Draft, ExportOptions, TrafficPlan
from modelreg.release.rules import USER_ID, Rule

__all__ = ["FILES", "check_address", "gateway_id", "render", "table"]

FILES = ("mreg.js", "routing.json", "fallback.json", "mreg.conf")
"""The files of the export, in the order they are written (the configuration last)."""

_ADDRESS = re.compile(
    r"(?:(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r":(?P<port>[0-9]{1,5})|unix:/[A-Za-z0-9_./-]{1,200})"
)
_LISTEN = re.compile(r"(?:(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|\*):)?(?P<port>[0-9]{1,5})")
_HEADER = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_ID_BAD = re.compile(r"[^a-z0-9]+")


def gateway_id(model: str) -> str:
    """The model as an nginx/JavaScript identifier part: `team/fraud-v2` → `team_fraud_v2`."""
    return _ID_BAD.sub("_", model.lower()).strip("_") or "model"


def check_address(text: str, what: str) -> str:
    """`HOST:PORT`, `[IPv6]:PORT` or `unix:/path`, refusing what could break the config."""
    m = _ADDRESS.fullmatch(text)
    if not m or (m.group("port") is not None and not 0 < int(m.group("port")) < 65536):
        raise InvalidInput(
            f"invalid {what} {text!r}: expected HOST:PORT, [IPv6]:PORT or unix:/PATH"
        )
    return text


def _check_listen(text: str) -> str:
    m = _LISTEN.fullmatch(text)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise InvalidInput(f"invalid --listen {text!r}: expected ADDRESS:PORT or PORT")
    return text


def _header(opts: ExportOptions, attribute: str) -> str | None:
    name = opts.header(attribute)
    if name is not None and not _HEADER.fullmatch(name):
        raise InvalidInput(f"invalid header name {name!r} for {attribute}")
    return name


def _upstream_name(plan: TrafficPlan, version_slug: str) -> str:
    return f"mreg_{gateway_id(plan.model)}_{version_slug}"


def upstreams(plan: TrafficPlan, opts: ExportOptions) -> dict[str, tuple[str, str]]:
    """Version → (upstream name, address) for every version given and every one routed to.

    Raises:
        InvalidInput: a routed version has no address, or an address is malformed.
    """
    out: dict[str, tuple[str, str]] = {}
    template = opts.upstreams.get("*")
    routed = [b for b in (plan.stable, plan.canary) if b is not None]
    for version, address in sorted(opts.upstreams.items()):
        if version != "*":
            b = Backend(version, "")
            out[version] = (_upstream_name(plan, b.slug), check_address(address, "--upstream"))
    for b in routed:
        if b.version in out:
            continue
        if template is None:
            raise InvalidInput(
                f"no upstream for {plan.model}@{b.version}: give --upstream "
                f"{b.version}=HOST:PORT (or '*=TEMPLATE' with {{version}} or {{slug}})"
            )
        address = template.replace("{slug}", b.slug)
        address = opts.fill(address, plan, b)
        out[b.version] = (_upstream_name(plan, b.slug), check_address(address, "--upstream"))
    return out


def _target(b: Backend, ups: dict[str, tuple[str, str]], variant: str | None = None) -> Any:
    doc = {"version": b.version, "upstream": ups[b.version][0]}
    if variant is not None:
        doc["variant"] = variant
    return doc


def _rule(index: int, rule: Rule, opts: ExportOptions, draft: Draft) -> dict[str, Any] | None:
    when = []
    for m in rule.when:
        h = None if m.key == USER_ID else _header(opts, m.key)
        if m.key != USER_ID and h is None:
            draft.losses.append(f"{describe(index, rule)}: {m.key} travels in no header")
            return None
        value: Any = {v: 1 for v in m.values} if m.op == "in" else m.values[0]
        when.append({"header": h, "op": m.op, "value": value})
    threshold = None if rule.weight is None else rule.weight * BUCKETS_PER_HUNDREDTH
    return {
        "label": rule.name or str(index),
        "users": {u: 1 for u in rule.users} if rule.users else None,
        "when": when,
        "pin": rule.variant,
        "threshold": threshold,
    }


def table(plan: TrafficPlan, opts: ExportOptions, draft: Draft | None = None) -> dict[str, Any]:
    """The routing table the njs module follows (what `routing.json` holds)."""
    draft = draft if draft is not None else Draft()
    ups = upstreams(plan, opts)
    doc: dict[str, Any] = {
        "mreg": 1, "model": plan.model, "release": plan.release, "generation": plan.generation,
        "state": plan.state,
    }  # fmt: skip
    if plan.canary is None or plan.mirror:
        variant = "canary" if plan.ended_on_canary else "baseline"
        doc.update(mode="fixed", fixed=_target(plan.stable, ups, variant))
        return doc
    user = _header(opts, USER_ID)
    if user is None:
        raise InvalidInput("the gateway needs the header carrying the user ID (--key-header)")
    key: str | None = user
    if plan.stick_by != USER_ID:
        key = _header(opts, plan.stick_by)
        if key is None:
            draft.losses.append(
                f"stickiness by {plan.stick_by}: it travels in no header, so requests would be "
                "split at random"
            )
    rules = [_rule(i, r, opts, draft) for i, r in enumerate(plan.rules, 1)]
    doc.update(
        mode="split", seed=plan.seed, user=user, key=key,
        threshold=plan.weight * BUCKETS_PER_HUNDREDTH,
        canary=_target(plan.canary, ups), baseline=_target(plan.stable, ups),
        rules=[r for r in rules if r is not None],
    )  # fmt: skip
    return doc


def _js(plan: TrafficPlan, ups: dict[str, tuple[str, str]], default: list[str]) -> bytes:
    source = resources.files(__package__).joinpath("gateway/mreg.js").read_text("utf-8")
    fills = {
        "@MODEL@": json.dumps(plan.model),
        "@UPSTREAMS@": json.dumps({name: 1 for name, _ in sorted(ups.values())}),
        "@DEFAULT@": json.dumps(default),
        "@ID@": gateway_id(plan.model),
    }
    for mark, value in fills.items():
        source = source.replace(mark, value)
    return source.encode("utf-8")


def _conf(
    plan: TrafficPlan, opts: ExportOptions, ups: dict[str, tuple[str, str]], default: list[str]
) -> bytes:
    gid = gateway_id(plan.model)
    d = (opts.directory or ".").rstrip("/")
    v = f"$mreg_{gid}"
    lines = [
        f"# mreg gateway for {plan.model}: written by `mreg release export --format nginx-njs`",
        "# (generation and weights are in routing.json). Include this file inside http {}; the",
        "# njs module must be loaded (Debian: libnginx-mod-http-js). Do not edit: re-export.",
        f"js_preload_object mreg_table_{gid} from {d}/routing.json;",
        f"js_preload_object mreg_fallback_{gid} from {d}/fallback.json;",
        f"js_import mreg_{gid} from {d}/mreg.js;",
        f"js_set {v}_route mreg_{gid}.route;",
        f"js_set {v}_status mreg_{gid}.status;",
        f'map {v}_route {v}_upstream {{ "~^(?<u>\\S+) " $u; default {default[0]}; }}',
        f'map {v}_route {v}_variant {{ "~^\\S+ (?<w>\\S+) " $w; default {default[1]}; }}',
        f'map {v}_route {v}_version {{ "~ (?<x>\\S+)$" $x; default "{default[2]}"; }}',
        "",
    ]
    for name, address in sorted(ups.values()):
        lines += [f"upstream {name} {{", f"    server {address};", "    keepalive 32;", "}"]
    mirror = plan.mirror and plan.canary is not None
    lines += [
        "",
        "server {",
        f"    listen {_check_listen(opts.listen)};",
        "    location / {",
        f"        proxy_pass http://{v}_upstream;",
        "        proxy_http_version 1.1;",
        '        proxy_set_header Connection "";',
        "        proxy_set_header Host $host;",
        f"        proxy_set_header X-Mreg-Variant {v}_variant;",
        f"        proxy_set_header X-Mreg-Version {v}_version;",
        f"        add_header X-Mreg-Variant {v}_variant always;",
        f"        add_header X-Mreg-Version {v}_version always;",
    ]
    if mirror:
        lines += [f"        mirror /.mreg/{gid}/mirror;", "        mirror_request_body on;"]
    lines.append("    }")
    if mirror:
        assert plan.canary is not None
        canary = ups[plan.canary.version][0]
        lines += [
            f"    location = /.mreg/{gid}/mirror {{",
            "        internal;",
            f"        proxy_pass http://{canary}$request_uri;",
            "        proxy_http_version 1.1;",
            '        proxy_set_header Connection "";',
            "        proxy_set_header Host $host;",
            "        proxy_set_header X-Mreg-Variant shadow;",
            f'        proxy_set_header X-Mreg-Version "{plan.canary.version}";',
            "    }",
        ]
    lines += [
        "    location = /.mreg/status {",
        "        allow 127.0.0.1;",
        "        allow ::1;",
        "        deny all;",
        "        default_type application/json;",
        f"        return 200 {v}_status;",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _dump(doc: Any) -> bytes:
    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


def render(plan: TrafficPlan, opts: ExportOptions) -> Draft:
    """The four files of the gateway for the plan (see the module docstring)."""
    draft = Draft(sticky=True)
    doc = table(plan, opts, draft)
    ups = upstreams(plan, opts)
    fixed = doc.get("fixed") or {}
    stable = fixed or doc["baseline"]
    variant = fixed.get("variant", "baseline")
    default = [stable["upstream"], variant, stable["version"]]
    data = _dump(doc)
    draft.documents.append(doc)
    draft.files = {
        "mreg.js": _js(plan, ups, default),
        "routing.json": data,
        "fallback.json": data,
        "mreg.conf": _conf(plan, opts, ups, default),
    }
    if plan.paused:
        draft.notes.append("the release is paused: the gateway keeps its weight until it resumes")
    return draft

"""`mreg release export` (issue 7): a model's routing as Kubernetes YAML for a mesh or gateway.

One call of `Store.release_export` (or `Store.release_export_watch` with `--watch`), the
facade over `modelreg.release.export`; this module parses options and prints: the documents
on stdout (or to `--output`), what the format cannot express and other remarks on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, raw, stderr_line

if TYPE_CHECKING:
    from rich.console import Console

    from modelreg.release.export import Export

__all__ = ["install"]

Text = Optional[str]  # noqa: UP045 (Typer needs Optional on Python 3.10)


def _report(result: Export, as_json: bool) -> None:
    """Losses always go to stderr (they are why the export fails); notes unless --json."""
    label = "lost (--lossy)" if result.lossy else "cannot express"
    for loss in result.losses:
        stderr_line(f"{label}: {loss}")
    if not as_json:
        for note in result.notes:
            stderr_line(f"note: {note}")


def export(
    name: Annotated[str, typer.Argument(help="Model name.")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="istio, gateway-api, smi, nginx, kserve, argo, flagger or nginx-njs.",
            show_default=False,
        ),
    ],
    service: Annotated[
        Text,
        typer.Option("--service", help="The model's Kubernetes Service (default: the model name)."),
    ] = None,
    namespace: Annotated[
        Text, typer.Option("--namespace", "-n", help="Namespace of the resources (default: none).")
    ] = None,
    port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--port", min=1, max=65535, help="The Services' port (default 80 where needed)."
        ),
    ] = None,
    host: Annotated[
        Text, typer.Option("--host", help="External host name (Ingress, Gateway).")
    ] = None,
    gateway: Annotated[
        Text,
        typer.Option("--gateway", help="Attach to this Gateway (default: mesh traffic, GAMMA)."),
    ] = None,
    header: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--header",
            help="ATTRIBUTE=HEADER: the request header carrying a rule attribute (repeatable; "
            "default x-<attribute>, e.g. user_id=x-user-id; ATTRIBUTE= for none).",
        ),
    ] = None,
    version_label: Annotated[
        str, typer.Option("--version-label", help="Pod label holding the version (Istio, Argo).")
    ] = "version",
    storage_uri: Annotated[
        Text,
        typer.Option(
            "--storage-uri",
            help="kserve: where a version's files are, e.g. s3://bucket/{model}/{version}.",
        ),
    ] = None,
    model_format: Annotated[
        Text, typer.Option("--model-format", help="kserve: model format (sklearn, onnx...).")
    ] = None,
    image: Annotated[
        str,
        typer.Option("--image", help="argo: container image, with {service} {model} {version}."),
    ] = "{service}:{version}",
    traffic_router: Annotated[
        Text,
        typer.Option(
            "--traffic-router",
            help="argo, flagger: the router that splits traffic: istio, nginx or gateway-api.",
        ),
    ] = None,
    prometheus_address: Annotated[
        Text,
        typer.Option(
            "--prometheus-address",
            help="argo, flagger: export the release's checks as Prometheus queries against "
            "this URL (AnalysisTemplate, MetricTemplate).",
        ),
    ] = None,
    lossy: Annotated[
        bool,
        typer.Option(
            "--lossy", help="Export what the format can express; list the rest on stderr."
        ),
    ] = False,
    sticky: Annotated[
        bool,
        typer.Option(
            "--sticky",
            help="istio, gateway-api (nginx: canary side only): send a request whose variant "
            "header, set at the edge, says canary or baseline to that side.",
        ),
    ] = False,
    variant_header: Annotated[
        str,
        typer.Option("--variant-header", help="--sticky: the header naming the side."),
    ] = "x-mreg-variant",
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--output", "-o", help="Write the YAML to this file (atomically)."),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep --output current: rewrite it on every change.")
    ] = False,
    interval: Annotated[
        str, typer.Option("--interval", help="--watch: how often to check: 1s, 500ms, 1m...")
    ] = "1s",
    max_duration: Annotated[
        Text, typer.Option("--max-duration", help="--watch: stop after this long (30s, 2h...).")
    ] = None,
    max_writes: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--max-writes", min=1, help="--watch: stop after writing the file N times."),
    ] = None,
    upstream: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--upstream",
            help="nginx-njs: VERSION=HOST:PORT of a version's model server (repeatable; "
            "'*=TEMPLATE' with {version} or {slug} for the others).",
        ),
    ] = None,
    listen: Annotated[
        str, typer.Option("--listen", help="nginx-njs: the gateway's ADDRESS:PORT.")
    ] = "127.0.0.1:8080",
    key_header: Annotated[
        Text,
        typer.Option("--key-header", help="nginx-njs: the header carrying the user ID."),
    ] = None,
    exec_cmd: Annotated[
        Text,
        typer.Option(
            "--exec",
            help="After each write, run this shell command with the export on stdin "
            "(kubectl apply -f -, nginx -s reload...).",
        ),
    ] = None,
    git: Annotated[
        bool,
        typer.Option("--git", help="Commit --output to its git repository on each change, push."),
    ] = False,
    report_cmd: Annotated[
        Text,
        typer.Option("--report", help="A shell command printing the generation the target runs."),
    ] = None,
    apply_timeout: Annotated[
        str,
        typer.Option(
            "--apply-timeout",
            help="How long --exec and --report may take, and the target may take to report "
            "the generation (30s, 2m...).",
        ),
    ] = "60s",
    as_target: Annotated[
        Text,
        typer.Option(
            "--as-target",
            help="Save this export as a release target NAME that 'mreg release watch' and "
            "'mreg release apply' apply; export nothing now.",
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print Kubernetes YAML that applies the release's weights and rules in a mesh or gateway.

    Exits 1, exporting nothing, when the format cannot express part of the release (unless
    --lossy).
    """
    from dataclasses import replace

    from modelreg.errors import InvalidInput
    from modelreg.release import export as ex
    from modelreg.release.targets import ApplyFailed
    from modelreg.release.targetspec import TargetSpec

    headers: dict[str, str] = {}
    for h in header or []:
        attr, sep, value = h.partition("=")
        if not sep or not attr.strip():
            raise InvalidInput(f"invalid --header {h!r}: expected ATTRIBUTE=HEADER")
        headers[attr.strip()] = value
    if key_header is not None:
        headers.setdefault("user_id", key_header)
    options = ex.ExportOptions(
        service=service, namespace=namespace, port=port, host=host, gateway=gateway,
        headers=headers, version_label=version_label, storage_uri=storage_uri,
        model_format=model_format, image=image, lossy=lossy,
        traffic_router=traffic_router, prometheus_address=prometheus_address,
        sticky=sticky, variant_header=variant_header,
        upstreams=_upstreams(upstream or []), listen=listen,
    )  # fmt: skip
    out = Output(as_json)
    st = open_store(store)
    if format == "nginx-njs":
        if output is None:
            raise InvalidInput("nginx-njs writes a directory: give --output DIR")
        options = replace(options, directory=str(output.resolve()))
    spec = None
    if exec_cmd is not None or git or report_cmd is not None or as_target is not None:
        spec = TargetSpec(
            as_target or "export", format, options, None if output is None else str(output),
            exec_cmd, git, report_cmd, ex.parse_duration(apply_timeout),
        )  # fmt: skip
    if as_target is not None:
        assert spec is not None
        saved = st.release_target_add(name, spec)
        out.result(
            saved.to_dict(), lambda c: c.print(f"saved release target {as_target} of {name}")
        )
        return
    if watch:
        if output is None:
            raise InvalidInput("--watch needs --output FILE")

        def failed(why: str) -> None:
            stderr_line(f"apply failed (retrying): {why}")

        def wrote(result: Export) -> None:
            _report(result, as_json)
            out.note(f"generation {result.generation}: wrote {output}")

        report = st.release_export_watch(
            name, format, options, output, interval_s=ex.parse_duration(interval),
            max_duration_s=None if max_duration is None else ex.parse_duration(max_duration),
            max_writes=max_writes, on_write=wrote, apply=spec, on_apply_error=failed,
        )  # fmt: skip
        out.result(
            report.to_dict(),
            lambda c: c.print(f"{report.writes} write(s) in {report.checks} check(s)"),
        )
        return
    if spec is not None:
        applied = st.release_export_apply(name, spec)
        if not applied.ok:
            raise ApplyFailed(applied.error or "the apply failed")
        out.result(applied.to_dict(), lambda c: c.print(f"applied generation {applied.generation}"))
        return
    result = st.release_export(name, format, options)
    _report(result, as_json)
    result.raise_for_losses()
    if output is not None:
        changed = ex.write(result, output)

        def render(c: Console) -> None:
            c.print(f"{'wrote' if changed else 'unchanged'}: {output}")

        out.result(result.to_dict(), render)
    elif as_json:
        out.result(result.to_dict(), lambda c: None)
    else:
        raw(result.yaml().decode("utf-8"))


def _upstreams(items: list[str]) -> dict[str, str]:
    from modelreg.errors import InvalidInput

    out: dict[str, str] = {}
    for item in items:
        version, sep, address = item.partition("=")
        if not sep or not version.strip() or not address.strip():
            raise InvalidInput(f"invalid --upstream {item!r}: expected VERSION=HOST:PORT")
        out[version.strip()] = address.strip()
    return out


def install(release_app: typer.Typer) -> None:
    """Add `export` to the `mreg release` command group."""
    release_app.command()(export)

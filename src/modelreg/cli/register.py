"""`mreg register`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from modelreg.cli._cards import profile_summary
from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, human_size, progress
from modelreg.cli.signing import PasswordEnvOpt, key_password

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["install"]

_PROGRESS_MIN_BYTES = 64 * 1024 * 1024


def _progress_bar() -> tuple[Callable[[int], Callable[[int], None]], Callable[[], None]]:
    """A rich byte progress bar on stderr for large inputs on a terminal."""
    state: dict[str, object] = {}

    def start(total: int) -> Callable[[int], None]:
        if total < _PROGRESS_MIN_BYTES:
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn

        bar = progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
        )
        if bar is None:  # stderr is not a terminal
            return lambda n: None
        bar.start()
        task = bar.add_task("hashing and storing", total=total)
        state["bar"] = bar
        return lambda n: bar.advance(task, n)

    def stop() -> None:
        bar = state.get("bar")
        if bar is not None:
            bar.stop()  # type: ignore[attr-defined]

    return start, stop


def register(
    name: Annotated[str, typer.Argument(help="Model name, e.g. fraud-detector or team/model.")],
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files or directories to register (a Git LFS pointer stands for its object)."
        ),
    ],
    version: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--version", "-V", help="SemVer version, e.g. 1.2.0 or 2.0.0-rc.1."),
    ] = None,
    bump: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--bump",
            help="Bump major|minor|patch from the latest version (default: minor; the first "
            "version is then 0.1.0).",
        ),
    ] = None,
    param: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--param", "-p", help="Training param KEY=VALUE (repeatable)."),
    ] = None,
    params_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--params-file", help="YAML or JSON file of training params."),
    ] = None,
    metric: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--metric", help="Metric SPLIT.NAME=NUMBER, e.g. test.f1=0.91 (repeatable)."),
    ] = None,
    metrics_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--metrics-file", help="YAML or JSON file: {split: {metric: number}}."),
    ] = None,
    data: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--data", help="Data used: a local path (hashed) or a URI (recorded)."),
    ] = None,
    profile: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--profile/--no-profile",
            help="Store the profile of each CSV, JSON Lines or Parquet --data file with the "
            "version (default: the store's register.profile setting, else no).",
        ),
    ] = None,
    code: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--code", help="Git work tree to record as code lineage (default: cwd)."),
    ] = None,
    no_code: Annotated[
        bool, typer.Option("--no-code", help="Do not record git code lineage.")
    ] = False,
    requirements: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--requirements",
            help="requirements.txt, conda environment.yml, uv.lock, poetry.lock, Pipfile.lock or "
            "pylock.toml to store with the version; a URL holding a credential is refused.",
        ),
    ] = None,
    message: Annotated[str, typer.Option("--message", "-m", help="Description.")] = "",
    tag: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--tag", "-t", help="Tag (repeatable)."),
    ] = None,
    author: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--author", help="Author (default: MREG_AUTHOR, else git user)."),
    ] = None,
    sign: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--sign",
            metavar="PRIVATE_KEY",
            help="Sign the version (OMS, model-signing) with this PEM private key.",
        ),
    ] = None,
    password_env: PasswordEnvOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register files or directories as a new version of model NAME.

    Re-registering the same version with identical content is a no-op (exit 0); with other
    content it fails (exit 1) and changes nothing. What ONNX, safetensors, GGUF, MLmodel and
    config.json files declare (inputs, outputs, opsets, dtypes, architecture...) is recorded
    without loading them; a file not read gets a line (skipped: install modelreg[onnx]).
    A --data file exported by `mreg data export` is recorded as production data of the
    version it came from.
    """
    from modelreg.assignments import load_mapping_file, parse_metrics, parse_params

    base_params = load_mapping_file(params_file, "--params-file") if params_file else None
    base_metrics = load_mapping_file(metrics_file, "--metrics-file") if metrics_file else None
    s = open_store(store)
    start, stop = _progress_bar()
    try:
        result = s.register(
            name, paths, version=version, bump=bump,
            params=parse_params(param or [], base_params),
            metrics=parse_metrics(metric or [], base_metrics),
            data=data or [], profile=profile, code=code, detect_code=not no_code,
            requirements=requirements,
            message=message, tags=tag or [], author=author, progress=start,
            sign=sign, sign_password=key_password(password_env),
        )  # fmt: skip
    finally:
        stop()
    mv = result.version

    def render(c: Console) -> None:
        verb = "Registered" if result.created else "Already registered (identical content)"
        c.print(
            f"{verb} [bold]{mv.name}@{mv.version}[/] id [cyan]{mv.short_id}[/] "
            f"({len(mv.files)} file{'s' if len(mv.files) != 1 else ''}, {human_size(mv.size)})"
        )
        if result.signature:
            c.print(f"Signed: signature [cyan]{result.signature[:12]}[/]")
        for d in mv.data:  # issue 21
            if d.profile is not None:
                c.print(f"Profiled: {d.uri} ({profile_summary(d.profile)})", markup=False)
            if d.from_production is not None:
                c.print(f"Trained on {d.from_production.describe()}", markup=False)
        for line in result.notes:  # files whose card or profile was not read (issues 20, 21)
            c.print(line, markup=False, highlight=False)

    Output(as_json).result(result.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command()(register)

"""Remote commands: `mreg remote add|list|remove|default`, `push`, `pull`, `fetch`, `status`."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from modelreg.cli._common import JsonOpt, StoreOpt, open_store
from modelreg.cli._output import Output, human_size, progress

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["install"]


ArgsArg = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Argument(
        help="[REMOTE] [NAME[@REF]]...: a configured remote (default: the default remote), "
        "then the models or versions to move (default: everything).",
        show_default=False,
    ),
]
JobsOpt = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option("--jobs", "-j", min=1, help="Parallel transfers (default 8, or mreg.jobs)."),
]


class _Bar:
    """A rich progress bar (bytes and objects) on a terminal; silent otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Progress | None = None
        self.task: Any = None
        self.total = self.done = 0
        self.lock = threading.Lock()

    def start(self, objects: int, nbytes: int) -> None:
        if not objects:
            return
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn

        self.bar = progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TextColumn("{task.fields[objects]}"),
        )
        if self.bar is None:  # stderr is not a terminal
            return
        self.total = objects
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=nbytes, objects=f"0/{objects} objects")

    def advance(self, objects: int, nbytes: int) -> None:
        if self.bar is None:
            return
        with self.lock:
            self.done += objects
            label = f"{self.done}/{self.total} objects"
            self.bar.update(self.task, advance=nbytes, objects=label)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _lines(c: Console, title: str, items: Any, style: str = "") -> None:
    from rich.markup import escape

    items = list(items)
    if items:
        c.print(f"{title}:")
        for item in items:
            c.print(f"  {f'[{style}]' if style else ''}{escape(str(item))}{'[/]' if style else ''}")


def add(
    name: Annotated[str, typer.Argument(help="Remote name, e.g. origin.")],
    url: Annotated[
        str,
        typer.Argument(
            help="fsspec URL: s3://bucket/prefix, file:///path, memory://x..., an OCI registry "
            "oci://HOST[:PORT]/REPOSITORY, or a Git LFS endpoint "
            "lfs+https://HOST/ORG/REPO.git/info/lfs (with --option meta=URL)."
        ),
    ],
    option: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--option",
            "-o",
            help="Driver option KEY=VALUE (repeatable): endpoint_url, region, profile, "
            "path_style=true, or mreg.jobs / mreg.part_size_mib; for a Git LFS remote meta=URL "
            "and meta.KEY=VALUE. Never secrets.",
        ),
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default remote.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a remote (the first one added becomes the default)."""
    from modelreg.remote.config import parse_option

    options = dict(parse_option(o) for o in option or [])
    info = open_store(store).remotes.add(name, url, options, default=default)
    mark = " (default)" if info.default else ""
    Output(as_json).result(info.to_dict(), lambda c: c.print(f"Added remote {name}{mark}"))


def list_(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the remotes (the default one is marked with *)."""
    rows = open_store(store).remotes.list()

    def render(c: Console) -> None:
        from rich.markup import escape

        if not rows:
            c.print("no remotes (mreg remote add NAME URL)")
        for r in rows:
            opts = " ".join(f"{k}={v}" for k, v in sorted(r.remote.options.items()))
            mark = "*" if r.default else " "
            c.print(f"{mark} {r.remote.name}\t{escape(r.remote.url)}\t{escape(opts)}")

    Output(as_json).result([r.to_dict() for r in rows], render)


def remove(
    name: Annotated[str, typer.Argument(help="Remote to forget.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Forget a remote and what this store tracked of it (the remote is not touched)."""
    spec = open_store(store).remotes.remove(name)
    Output(as_json).result(
        {"name": spec.name, "url": spec.url, "removed": True},
        lambda c: c.print(f"Removed remote {name}"),
    )


def default(
    name: Annotated[str, typer.Argument(help="Remote to use by default.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Choose the default remote of push, pull, fetch and status."""
    spec = open_store(store).remotes.set_default(name)
    Output(as_json).result(
        {"name": spec.name, "url": spec.url, "default": True},
        lambda c: c.print(f"Default remote: {name}"),
    )


def push(
    args: ArgsArg = None, jobs: JobsOpt = None, store: StoreOpt = None, as_json: JsonOpt = False
) -> None:
    """Send what the remote lacks: objects, manifests, refs and the audit trail."""
    s = open_store(store)
    remote, specs = s.remotes.split(args or [])
    bar = _Bar("pushing")
    try:
        r = s.push(remote, specs, jobs=jobs, progress=bar)
    finally:
        bar.stop()

    def render(c: Console) -> None:
        if not (r.objects_sent or r.manifests_sent or r.refs_sent or r.audit_entries_sent):
            c.print(f"{r.remote} is up to date ({r.seconds:.2f} s)")
        else:
            c.print(
                f"Pushed to {r.remote}: {r.objects_sent} objects ({human_size(r.bytes_sent)}) "
                f"sent, {r.objects_present} already there; {len(r.manifests_sent)} versions, "
                f"{len(r.refs_sent)} refs, {r.audit_entries_sent} audit entries "
                f"({r.seconds:.2f} s)"
            )
        _lines(c, "the remote is ahead here (mreg pull)", r.remote_ahead, "yellow")

    Output(as_json).result(r.to_dict(), render)


def pull(
    args: ArgsArg = None,
    theirs: Annotated[
        bool,
        typer.Option(
            "--theirs",
            help="For refs changed on both sides, take the remote's (your moves stay in the "
            "audit trail).",
        ),
    ] = False,
    jobs: JobsOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Receive what this store lacks; every object is re-hashed before it is stored."""
    s = open_store(store)
    remote, specs = s.remotes.split(args or [])
    bar = _Bar("pulling")
    try:
        r = s.pull(remote, specs, theirs=theirs, jobs=jobs, progress=bar)
    finally:
        bar.stop()

    def render(c: Console) -> None:
        rebased = f", {r.audit_rebased} local entries rebased" if r.audit_rebased else ""
        c.print(
            f"Pulled from {r.remote}: {r.objects_received} objects "
            f"({human_size(r.bytes_received)}) received and verified; "
            f"{len(r.manifests_received)} versions, {len(r.refs_updated)} refs, "
            f"{r.audit_received} audit entries{rebased} ({r.seconds:.2f} s)"
        )
        _lines(c, "conflicts (left as they are here)", r.conflicts, "red")
        _lines(c, "rejected", r.rejected, "red")

    Output(as_json).result(r.to_dict(), render)
    if not r.ok:
        raise typer.Exit(1)


def fetch(args: ArgsArg = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Download the remote's metadata only (manifests, refs, audit trail), not its objects."""
    s = open_store(store)
    remote, specs = s.remotes.split(args or [])
    r = s.fetch(remote, specs)

    def render(c: Console) -> None:
        c.print(f"Fetched {r.fetched} metadata files ({human_size(r.bytes)}) from {r.remote}")
        _lines(c, "versions on the remote only (mreg pull)", r.remote_versions)
        _lines(c, "refs that differ", r.refs_changed)

    Output(as_json).result(r.to_dict(), render)


def status(
    remote_name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(
            help="Remote to compare with (default: the default remote).", show_default=False
        ),
    ] = None,
    remote: Annotated[
        bool, typer.Option("--remote", help="Compare the store with a remote, both ways.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what differs between the store and a remote (use --remote)."""
    from modelreg.errors import InvalidInput

    if not remote:
        raise InvalidInput("mreg status compares with a remote: use mreg status --remote [NAME]")
    r = open_store(store).remote_status(remote_name)

    def render(c: Console) -> None:
        if r.in_sync:
            c.print(f"in sync with {r.remote} ({r.url})")
            return
        c.print(f"{r.remote} ({r.url}):")
        c.print(f"  to push: {r.objects_to_push} objects ({human_size(r.bytes_to_push)})")
        c.print(f"  to pull: {r.objects_to_pull} objects ({human_size(r.bytes_to_pull)})")
        _lines(c, "versions to push", r.versions_to_push, "green")
        _lines(c, "versions to pull", r.versions_to_pull, "cyan")
        _lines(c, "versions that conflict", r.version_conflicts, "red")
        _lines(c, "refs", (f"{rel}: {state}" for rel, state in r.refs.items()))
        a = r.audit
        if a.state != "same":
            c.print(
                f"audit trail: {a.state} ({a.local_only} here only, {a.remote_only} there only)"
            )

    Output(as_json).result(r.to_dict(), render)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the app.

    The `remote` group is built here, once per app: a group shared between apps would collect
    every installation's commands (an app built after another then showed Typer's own usage
    lines for them).
    """
    remote_app = typer.Typer(
        help="Configure remotes: where push, pull and fetch send and read the store.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    remote_app.command()(add)
    remote_app.command("list")(list_)
    remote_app.command()(remove)
    remote_app.command()(default)
    app.add_typer(remote_app, name="remote")
    app.command()(push)
    app.command()(pull)
    app.command()(fetch)
    app.command()(status)

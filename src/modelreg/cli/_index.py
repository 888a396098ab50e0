"""The table of mreg's commands: which module installs each, and `mreg --help` from it.

`mreg CMD ...` builds only CMD's module (`COMMAND_MODULES` in modelreg.cli, derived from
`SUMMARY`). The top-level help lists each command with the first sentence of its help. Building the
real commands for it means importing every command module and letting Typer inspect ~50
signatures (~40 ms, see docs/benchmarks.md, start-up); this module builds the same listing
from `SUMMARY` instead, with parameterless stand-ins. tests/test_quality.py checks that the
two helps are identical at several terminal widths; after changing a command's help or
adding one, regenerate the table with `python docs/gen_cli_index.py`.
"""

from __future__ import annotations

import typer

__all__ = ["SUMMARY", "index_app"]

# (name, the command module installing it, the first paragraph of its help, whether it is a
# group), in the listing's order.
# -- generated: python docs/gen_cli_index.py --
SUMMARY: tuple[tuple[str, str, str, bool], ...] = (
    (
        "init",
        "store",
        "Create a store (.modelreg/) in DIRECTORY; running it again is a no-op.",
        False,
    ),
    (
        "register",
        "register",
        "Register files or directories as a new version of model NAME.",
        False,
    ),
    (
        "list",
        "read",
        "List models, or the versions of NAME; with filters, search versions of every model.",
        False,
    ),
    (
        "show",
        "read",
        "Show a version's identity card: who, when, data, code, metrics, files, aliases.",
        False,
    ),
    ("diff", "read", "Compare two versions: params, metrics, files, data and code.", False),
    (
        "get",
        "read",
        "Write a version's files into a directory, verifying every byte against its digest.",
        False,
    ),
    (
        "log",
        "read",
        "Show the audit trail: who changed what, when, and why (the newest 100 entries unless -n).",
        False,
    ),
    (
        "verify",
        "read",
        "Check the audit chain, manifests, aliases and every object's digest (exit 1 if bad).",
        False,
    ),
    (
        "promote",
        "aliases",
        "Point an alias at a version, if the version passes the alias's promotion gates.",
        False,
    ),
    (
        "rollback",
        "aliases",
        "Move an alias back to the version it pointed at before (or to --to VERSION).",
        False,
    ),
    (
        "history",
        "aliases",
        "Show the promotions and rollbacks of a model's aliases (the newest 100 unless -n).",
        False,
    ),
    (
        "deprecate",
        "aliases",
        "Deprecate a version: its files stay, but it can no longer be promoted.",
        False,
    ),
    (
        "tag",
        "aliases",
        "Add or remove tags of a version (audited; the manifest itself never changes).",
        False,
    ),
    (
        "delete",
        "delete",
        "Delete a version, audited: a tombstone replaces its manifest; gc reclaims its files.",
        False,
    ),
    (
        "sign",
        "signing",
        "Sign a version's files (OpenSSF Model Signing), or attach a signature made elsewhere.",
        False,
    ),
    (
        "demo",
        "demo",
        "Run the embedded demo: train, register two versions, promote, roll back (no server).",
        False,
    ),
    (
        "push",
        "remote",
        "Send what the remote lacks: objects, manifests, refs and the audit trail.",
        False,
    ),
    (
        "pull",
        "remote",
        "Receive what this store lacks; every object is re-hashed before it is stored.",
        False,
    ),
    (
        "fetch",
        "remote",
        "Download the remote's metadata only (manifests, refs, audit trail), not its objects.",
        False,
    ),
    ("status", "remote", "Show what differs between the store and a remote (use --remote).", False),
    (
        "pack",
        "bundle",
        "Write a version (manifest, files, requirements) as one bundle or an OCI layout.",
        False,
    ),
    (
        "unpack",
        "bundle",
        "Register the version in a bundle, verifying every file (a no-op if already there).",
        False,
    ),
    (
        "validate",
        "validate",
        "Check mreg documents (YAML syntax, schema, meaning): a line per problem, exit 1 if any.",
        False,
    ),
    (
        "schema",
        "validate",
        "Print the JSON Schema of a document kind (the one validate uses), or list the kinds.",
        False,
    ),
    (
        "check-large-models",
        "validate",
        "Refuse model files over a size limit: register them with mreg instead of committing them.",
        False,
    ),
    (
        "fsck",
        "maintenance",
        "Check every manifest, object, alias, rollout and the audit chain; exit 1 on errors.",
        False,
    ),
    (
        "gc",
        "maintenance",
        "Remove objects no manifest names, older than a grace period (here, or on --remote).",
        False,
    ),
    (
        "monitor",
        "monitor",
        "Check a version's captured inputs for drift. Exit 0 ok, 1 crossed, 3 inconclusive.",
        False,
    ),
    (
        "ui",
        "ui",
        "Serve a read-only web view of the store (or a remote): models, cards, diffs, releases.",
        False,
    ),
    (
        "report",
        "ui",
        "Write the web view's pages as one HTML file (CI artifacts, PR comments), or PNG charts.",
        False,
    ),
    (
        "policy",
        "policy",
        "The policy that travels with the store: gates, trusted keys, who may move aliases.",
        True,
    ),
    (
        "release",
        "release",
        "Canary releases: send a share of traffic to a new version, step it up,"
        " promote or abort, and let analysis judge it. Refused transitions exit"
        " 1 with the reason.",
        True,
    ),
    (
        "remote",
        "remote",
        "Configure remotes: where push, pull and fetch send and read the store.",
        True,
    ),
    (
        "hook",
        "hooks",
        "Webhooks on audit events: POST promotions, rollbacks, releases to a URL, signed.",
        True,
    ),
    (
        "import",
        "imports",
        "Import models from MLflow or GTO, with their history (docs/import.md).",
        True,
    ),
    (
        "data",
        "data",
        "Production data: export the requests routers sampled, for the next training.",
        True,
    ),
)
# -- end generated --


def _stand_in() -> None:
    """A command's place in the listing (never run: the real command is built to run)."""


def index_app(app: typer.Typer) -> typer.Typer:
    """`app` (a new, empty mreg app) given every command's name and summary, to list them."""
    for name, _, text, group in SUMMARY:
        if group:
            app.add_typer(typer.Typer(), name=name, help=text)
        else:
            app.command(name, help=text)(_stand_in)
    return app

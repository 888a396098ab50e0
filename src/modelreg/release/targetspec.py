"""Release targets: where a model's routing is applied outside mreg's own routers. Pure.

A target is an export (a format and its options) plus how it is applied: written to
`output` (a file, or a directory for `nginx-njs`), committed and pushed when `git` is set
(GitOps), and/or handed to a command (`exec`, e.g. `kubectl apply -f -` or
`nginx -s reload`). `report` is an optional command that prints the generation the target
runs (for nginx-njs mreg asks the gateway itself). Targets are kept per model in the store's
`config.yaml` under `targets:` (local to the clone: they hold commands, never secrets);
`mreg release export ... --as-target NAME` saves one and `mreg release watch` applies each.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.release.export.plan import ExportOptions

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "TargetSpec",
    "options_from_dict",
    "options_to_dict",
    "targets_from_config",
]

DEFAULT_TIMEOUT_S = 60.0
"""How long an apply command (and a report) may take before the apply counts as failed."""

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_MAX_COMMAND = 4096
_OPTION_FIELDS = {f.name: f for f in dataclasses.fields(ExportOptions)}
_DEFAULTS = ExportOptions()


def options_to_dict(opts: ExportOptions) -> dict[str, Any]:
    """The options that differ from the defaults, as plain data (for `config.yaml`)."""
    out: dict[str, Any] = {}
    for name in _OPTION_FIELDS:
        value = getattr(opts, name)
        if value != getattr(_DEFAULTS, name) and name != "directory":
            out[name] = dict(value) if isinstance(value, Mapping) else value
    return out


def options_from_dict(doc: Any, where: str) -> ExportOptions:
    """Export options from `options_to_dict`'s form, each checked against its default's type."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where}: options must be a mapping")
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in _OPTION_FIELDS or key == "directory":
            raise InvalidInput(f"{where}: unknown export option {key!r}")
        default = getattr(_DEFAULTS, key)
        if isinstance(default, Mapping):
            ok = isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            )
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif key == "port":
            ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        else:
            ok = value is None or isinstance(value, str)
        if not ok:
            raise InvalidInput(f"{where}: invalid value for export option {key!r}: {value!r}")
        kwargs[key] = value
    return ExportOptions(**kwargs)


def _command(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_COMMAND:
        raise InvalidInput(f"{where}: a command is a non-empty string of at most 4096 characters")
    if "\0" in value:
        raise InvalidInput(f"{where}: a command cannot contain NUL")
    return value


@dataclass(frozen=True)
class TargetSpec:
    """One place a model's routing is applied: an export, and how it is applied."""

    name: str
    format: str
    options: ExportOptions = field(default_factory=ExportOptions)
    output: str | None = None
    """The file (a directory for nginx-njs) the export is written to."""
    exec: str | None = None
    """A shell command run after each change, the export on its standard input."""
    git: bool = False
    """Commit `output` to the git repository it is in, one commit per change, and push."""
    report: str | None = None
    """A shell command that prints the generation the target runs (an integer)."""
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise InvalidInput(
                f"invalid target name {self.name!r}: a lowercase letter, then up to 63 "
                "lowercase letters, digits, '_' or '-'"
            )
        if self.output is None and self.exec is None:
            raise InvalidInput(f"target {self.name}: give --output, --exec or both")
        if self.git and self.output is None:
            raise InvalidInput(f"target {self.name}: --git commits --output: give it")
        if self.format == "nginx-njs" and self.output is None:
            raise InvalidInput(f"target {self.name}: nginx-njs writes a directory: give --output")
        if not 0 < self.timeout_s <= 3600:
            raise InvalidInput(f"target {self.name}: the timeout must be 1 s to 1 h")

    def to_dict(self) -> dict[str, Any]:
        """The entry under `targets.MODEL` in `config.yaml`."""
        doc: dict[str, Any] = {"name": self.name, "format": self.format}
        opts = options_to_dict(self.options)
        if opts:
            doc["options"] = opts
        for key in ("output", "exec", "report"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        if self.git:
            doc["git"] = True
        if self.timeout_s != DEFAULT_TIMEOUT_S:
            doc["timeout_s"] = self.timeout_s
        return doc

    @classmethod
    def from_dict(cls, doc: Any, where: str) -> TargetSpec:
        """Parse an entry of `config.yaml`; InvalidInput names what is wrong."""
        if not isinstance(doc, dict):
            raise InvalidInput(f"{where}: a target must be a mapping")
        unknown = set(doc) - {"name", "format", "options", "output", "exec", "git", "report",
                              "timeout_s"}  # fmt: skip
        if unknown:
            raise InvalidInput(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        name, fmt, output = doc.get("name"), doc.get("format"), doc.get("output")
        if not isinstance(name, str) or not isinstance(fmt, str):
            raise InvalidInput(f"{where}: a target needs a name and a format")
        if output is not None and (not isinstance(output, str) or not output or "\0" in output):
            raise InvalidInput(f"{where}: output must be a path")
        git, timeout = doc.get("git", False), doc.get("timeout_s", DEFAULT_TIMEOUT_S)
        if not isinstance(git, bool):
            raise InvalidInput(f"{where}: git must be true or false")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise InvalidInput(f"{where}: timeout_s must be a number of seconds")
        options = options_from_dict(doc.get("options") or {}, where)
        command = _command(doc.get("exec"), f"{where}.exec")
        report = _command(doc.get("report"), f"{where}.report")
        try:
            return cls(name, fmt, options, output, command, git, report, float(timeout))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None


def targets_from_config(doc: Any, source: str) -> dict[str, tuple[TargetSpec, ...]]:
    """`targets:` of `config.yaml`: model name → its targets (names unique per model)."""
    from modelreg.names import check_name

    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source}: targets must map model names to lists of targets")
    out: dict[str, tuple[TargetSpec, ...]] = {}
    for model, items in doc.items():
        where = f"{source}: targets.{model}"
        check_name(str(model))
        if not isinstance(items, list):
            raise InvalidInput(f"{where}: expected a list of targets")
        specs = tuple(TargetSpec.from_dict(d, f"{where}[{i}]") for i, d in enumerate(items))
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise InvalidInput(f"{where}: target names must be unique")
        out[str(model)] = specs
    return out

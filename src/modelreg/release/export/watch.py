"""`mreg release export --output FILE [--watch]`: write the export, and keep it current.

`watch` renders the export every `interval_s` seconds (two small files are read: the rollout
manifest and the production alias) and rewrites the output file, atomically, whenever the
result differs from what the file holds, so a GitOps directory or a config reloader sees
each change of the release once. It stops after `max_duration_s` or `max_writes` (tests,
cron), and on the first error: a change the format cannot express (without `lossy`) or a
damaged manifest ends the watch with the last good file in place.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelreg.errors import InvalidInput
from modelreg.release.export.files import write
from modelreg.release.export.plan import ExportOptions

if TYPE_CHECKING:
    from modelreg.handle import StoreHandle
    from modelreg.release.export.plan import Export
    from modelreg.release.targetspec import TargetSpec

__all__ = ["WatchReport", "parse_duration", "watch", "write"]

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*\Z")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds from `30s`, `5m`, `2h`, `250ms` or a bare number of seconds."""
    m = _DURATION.match(text)
    if not m:
        raise InvalidInput(f"invalid duration {text!r}: e.g. 1s, 30s, 5m, 2h")
    return float(m.group(1)) * _SECONDS[m.group(2)]


@dataclass(frozen=True)
class WatchReport:
    """What a watch did: checks made, files written, the last generation exported."""

    output: str
    checks: int
    writes: int
    generation: int

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg release export --watch`."""
        return {
            "output": self.output,
            "checks": self.checks,
            "writes": self.writes,
            "generation": self.generation,
        }


def watch(
    store: StoreHandle,
    name: str,
    format: str,
    options: ExportOptions | None,
    output: Path,
    *,
    interval_s: float = 1.0,
    max_duration_s: float | None = None,
    max_writes: int | None = None,
    on_write: Callable[[Export], None] | None = None,
    apply: TargetSpec | None = None,
    on_apply_error: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WatchReport:
    """Keep `output` equal to the export of `name`'s routing until a limit is reached.

    With `apply` (a target with `exec` and/or `git`), each change is also committed and/or
    handed to the command (`release.targets.apply_export`); a failed apply is reported to
    `on_apply_error` and retried at every check until it succeeds.

    Raises:
        LossyExport: the release changed to something the format cannot express.
        IntegrityError: the rollout manifest is damaged.
    """
    from modelreg.release.export.render import export
    from modelreg.release.manifestfile import read_rollout
    from modelreg.release.targets import ApplyFailed, apply_export, message

    if interval_s <= 0:
        raise InvalidInput("the watch interval must be above 0")
    if format == "nginx-njs":
        options = replace(options or ExportOptions(), directory=str(output.resolve()))
    deadline = None if max_duration_s is None else clock() + max_duration_s
    checks = writes = generation = 0
    unapplied = False
    while True:
        result = export(store, name, format, options)
        result.raise_for_losses()
        checks += 1
        generation = result.generation
        if write(result, output):
            writes += 1
            unapplied = apply is not None
            if on_write is not None:
                on_write(result)
        if unapplied and apply is not None:
            try:
                apply_export(result, apply, message(result, read_rollout(store, name)))
                unapplied = False
            except (ApplyFailed, InvalidInput) as exc:
                if on_apply_error is not None:
                    on_apply_error(str(exc))
        if max_writes is not None and writes >= max_writes:
            break
        if deadline is not None and clock() + interval_s > deadline:
            break
        sleep(interval_s)
    return WatchReport(str(output), checks, writes, generation)

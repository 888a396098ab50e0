"""Where and how routers' metrics files are laid out: the one spelling of their format.

Model layer (docs/architecture.md). Each serving process appends the change since its
previous flush, one JSON line per decision group, to a file of its own::

    .modelreg/metrics/NAME/<release>/<host>-<pid>-<token>-<segment>.jsonl

A segment is `SEGMENT_S` seconds of wall time; a sealed segment (its time is over) can be
compacted into one file, `compact-<first segment>-<token>.jsonl`, whose first line names the
files it absorbed (`compaction_line`). `serving.metrics` writes these files
(`encode_line`), `analysis.sources` reads and compacts them and the web view reads them
(`decode_lines`); all take their paths, names and keys from here.

A line (`FORMAT` 1) is one JSON object, written without spaces. Its head (`HEAD`) says
which requests it counts: `v` (the format), `t0` and `t1` (the wall-clock interval, epoch
seconds, since the previous flush), `gen` (the rollout generation), `variant` (`baseline`
or `canary`), `version`, `id` (the version's manifest id) and `shadow` (true for the
canary's mirrored calls). Its body (`serving.aggregate.delta`) holds what changed, each key
only when something did: `n` and `err` (requests, errors), `lat` and `lsum` (latency
histogram in ms, `LogHistogram.to_dict`, and its sum), `out` (outcome name -> [count, sum,
sum of squares]), `oe` (late outcomes by exposure bucket, epoch seconds as a string ->
the same), `omin` (each outcome's smallest value), `score` (histogram) and `agree`
(`pairs`, `ne`: shadow comparisons and unequal answers, `diff`: histogram of differences).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from modelreg import layout

__all__ = [
    "COMPACTED",
    "COMPACT_PREFIX",
    "FORMAT",
    "GROUP",
    "HEAD",
    "SEGMENT_S",
    "absorbed",
    "compact_file",
    "compaction_line",
    "decode_lines",
    "encode",
    "encode_line",
    "group_of",
    "metrics_dir",
    "process_name",
    "read_lines",
    "rel_metrics_dir",
    "segment_file",
    "segment_in",
    "segment_of",
]

FORMAT = 1
"""The `v` of every line."""
SEGMENT_S = 600
"""Seconds of wall time per file of one process (then a new file is started)."""
HEAD = ("v", "t0", "t1", "gen", "variant", "version", "id", "shadow")
"""The keys of a line's head, in the order they are written."""
GROUP = ("v", "gen", "variant", "version", "id", "shadow")
"""The head of a compacted line (its `t0` and `t1` span the lines it merged)."""
COMPACTED = "compacted"
"""The key of a compacted file's first line: the names of the files it absorbed."""
COMPACT_PREFIX = "compact-"
"""The name of a compacted file starts with this."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# -- paths and names ------------------------------------------------------------------------------


def metrics_dir(root: Path, name: str, release: int) -> Path:
    """`metrics/NAME/<release>/` under the store root `root`."""
    return layout.metrics_dir(root, name) / str(release)


def rel_metrics_dir(name: str, release: int | None = None) -> str:
    """`metrics/NAME` or `metrics/NAME/<release>`, relative (as a remote holds it)."""
    rel = layout.metrics_dir(Path(), name).as_posix()
    return rel if release is None else f"{rel}/{int(release)}"


def segment_of(wall: float) -> int:
    """The segment a wall-clock time (seconds since the epoch) falls in."""
    return int(wall // SEGMENT_S)


def process_name(host: str, pid: int, token: str) -> str:
    """The per-process part of a file name: the host made safe (64 characters at most)."""
    return f"{_UNSAFE.sub('_', host)[:64]}-{pid}-{token}"


def segment_file(directory: Path, process: str, segment: int) -> Path:
    """The file one process appends to during one segment."""
    return directory / f"{process}-{segment}.jsonl"


def segment_in(filename: str) -> int:
    """The segment of a file's name (the last `-` part); ValueError or IndexError if none."""
    return int(filename.removesuffix(".jsonl").rsplit("-", 1)[1])


def compact_file(directory: Path, first: int, token: str) -> Path:
    """The compacted file whose first absorbed segment is `first`."""
    return directory / f"{COMPACT_PREFIX}{first}-{token}.jsonl"


# -- lines ------------------------------------------------------------------------------------


def encode(doc: Mapping[str, Any]) -> str:
    """One line (without its newline): compact JSON."""
    return json.dumps(doc, separators=(",", ":"))


def encode_line(
    t0: float, t1: float, gen: int, variant: str, version: str, id: str, shadow: bool,
    body: Mapping[str, Any],
) -> str:  # fmt: skip
    """A flushed line: the head (`HEAD`), then the body of `serving.aggregate.delta`."""
    return encode({
        "v": FORMAT, "t0": t0, "t1": t1, "gen": gen, "variant": variant, "version": version,
        "id": id, "shadow": shadow, **body,
    })  # fmt: skip


def compaction_line(names: Iterable[str]) -> str:
    """The first line of a compacted file: the files it absorbed."""
    return encode({"v": FORMAT, COMPACTED: list(names)})


def absorbed(first: Mapping[str, Any]) -> list[str]:
    """The files a compacted file absorbed, from its first line (empty for any other line)."""
    return list(first.get(COMPACTED) or ())


def group_of(doc: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """A line's (generation, variant, version, shadow), as written (None where absent)."""
    return doc.get("gen"), doc.get("variant"), doc.get("version"), doc.get("shadow")


def decode_lines(data: bytes) -> list[dict[str, Any]]:
    """The complete JSON-object lines of a file (a torn last line and bad lines skipped)."""
    body = data[: data.rfind(b"\n") + 1]  # the part after the last newline may be torn
    if not body:
        return []
    try:  # one parse for the whole file: 2-3x faster than line by line
        docs = json.loads(b"[" + body.rstrip(b"\n").replace(b"\n", b",") + b"]")
        if isinstance(docs, list) and all(isinstance(d, dict) for d in docs):
            return docs
    except (ValueError, RecursionError):  # a line nested too deeply is skipped below
        pass
    out = []
    for raw in data.split(b"\n")[:-1]:  # the last piece is "" or a torn line
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def read_lines(path: Path) -> list[dict[str, Any]]:
    """`decode_lines` of a file; empty when it is gone (absorbed by a compaction meanwhile)."""
    try:
        return decode_lines(path.read_bytes())
    except FileNotFoundError:
        return []

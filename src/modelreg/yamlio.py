"""The only YAML entry point of mreg: safe loading with limits, canonical dumping.

Loading uses the C safe loader (no custom tags, no Python objects), refuses documents over
`MAX_BYTES`, nested deeper than `MAX_DEPTH`, or using anchors/aliases (no mreg file needs them,
and they are how "billion laughs" documents blow up), and reports errors as `file:line:col`.
Dumping is canonical (sorted keys, block style, UTF-8) so a manifest's bytes — and so its
digest — depend only on its content.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from modelreg.errors import InvalidInput, MregError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "dump", "load", "load_file", "loads_data"]

MAX_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(data: bytes, source: str = "<input>", error: type[MregError] = InvalidInput) -> Any:
    """Parse one YAML (or JSON) document from bytes; raise `error` with `source:line` on failure."""
    if len(data) > MAX_BYTES:
        raise error(f"{source}: document is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{source}: not valid UTF-8 (byte {exc.start})") from None
    try:
        try:
            _check_events(text, source, error, _Loader)
        except yaml.MarkedYAMLError as exc:
            _classify(text, exc, source, error)
            raise
        doc = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise error(f"{where}: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:  # its str() spans two lines; errors are one line
        raise error(f"{source}: character {exc.position + 1}: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: {exc}") from None
    _check_shape(doc, source, error)
    return doc


def load_file(path: Path, error: type[MregError] = InvalidInput) -> Any:
    """Read and parse a YAML file; a missing file raises NotFound, unreadable InvalidInput."""
    from modelreg.fsutil import read_bounded

    return load(read_bounded(path, MAX_BYTES), str(path), error)


def loads_data(data: bytes, source: str) -> Any:
    """Parse a user-supplied YAML or JSON params/metrics file (JSON is YAML 1.2's subset)."""
    if source.endswith(".json"):
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{source}: invalid JSON ({exc})") from None
        except RecursionError:  # json's C scanner stops deep nesting with RecursionError
            raise InvalidInput(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
        _check_shape(doc, source, InvalidInput)
        return doc
    return load(data, source)


def dump(doc: Any) -> bytes:
    """Canonical YAML bytes of `doc` (sorted keys, block style, UTF-8)."""
    text: str = yaml.dump(
        doc, Dumper=_Dumper, sort_keys=True, allow_unicode=True, default_flow_style=False, width=100
    )
    return text.encode("utf-8")


_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _classify(text: str, exc: yaml.MarkedYAMLError, source: str, error: type[MregError]) -> None:
    """Give our own message when the C parser refused a document that is too deep.

    libyaml (since PyYAML 6.0.4) has a nesting limit of its own, and its scanner reads ahead,
    so a deep document can fail inside libyaml, in libyaml's words, before our event count
    reaches `MAX_DEPTH` (issue 13). The pure-Python parser has no such limit and is
    iterative: re-reading the text up to where libyaml stopped tells whether our limit was
    crossed first, so the message is the same whichever layer refuses the input. Only
    failing documents pay for this.
    """
    mark = exc.problem_mark or exc.context_mark
    end = mark.index + 1 if mark is not None and mark.index >= 0 else len(text)
    try:
        _check_events(text[:end], source, error, yaml.SafeLoader)
    except yaml.YAMLError:
        return  # the prefix is not YAML on its own: keep libyaml's verdict


def _check_events(text: str, source: str, error: type[MregError], loader_class: Any) -> None:
    """Refuse deep nesting and aliases on the parser's event stream, before composing.

    libyaml's composer recurses once per nesting level in C: a document of a few hundred
    KB of `[` overflows the C stack and kills the process (SIGSEGV), which no `except`
    can catch (issue 8). The event parser is iterative, so counting levels here is safe,
    and costs about a quarter of the load itself.
    """
    loader = loader_class(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, _OPEN):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
                    raise error(f"{where}: nested deeper than {MAX_DEPTH} levels")
            elif isinstance(event, _CLOSE):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
                raise error(f"{where}: YAML anchors and aliases are not allowed")
    finally:
        loader.dispose()


def _check_shape(doc: Any, source: str, error: type[MregError]) -> None:
    """Refuse aliases (shared containers) and excessive depth, iteratively."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_DEPTH:
                raise error(f"{source}: nested deeper than {MAX_DEPTH} levels")
            if id(node) in seen:
                raise error(f"{source}: YAML anchors and aliases are not allowed")
            seen.add(id(node))
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)

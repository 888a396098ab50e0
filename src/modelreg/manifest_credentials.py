"""Refuse a version whose manifest would hold a credential (issue 19), before anything is written.

`register` calls `refuse_credentials` with every field it is about to write: params, metrics,
message, tags, author, data references, the code's git remote and the files' paths (the
requirements file is checked as it is read, by `modelreg.requirements`). The first credential
found (see `modelreg.credentials`) is refused with InvalidInput (exit 2), one line naming the
field, the key path (`params.db.password`) or the argument, never the secret, and saying what
to do instead. Model layer (docs/architecture.md): pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from modelreg.credentials import check_text, find_in_data, find_in_text, refusal
from modelreg.errors import InvalidInput
from modelreg.manifest import CodeRef, DataRef

__all__ = ["FIXES", "refuse_credentials"]

_STORED = "nothing was stored"
FIXES = {
    "params": "pass secrets to the job through environment variables or a secret manager, "
    f"never as params; {_STORED}",
    "metrics": f"rename the metric; {_STORED}",
    "text": f"remove it (write the secret's environment variable name instead); {_STORED}",
    "data": "record the URI without it: readers of the data take credentials from their own "
    "chain (environment variables, a profile, a .netrc), and a presigned URL's unsigned form "
    f"names the same data; {_STORED}",
    "code": "remove it from the remote (git remote set-url origin URL-WITHOUT-IT, and keep "
    f"the token in a git credential helper) or register with --no-code; {_STORED}",
    "files": f"rename the file; {_STORED}",
}
"""What each refusal tells the user to do instead, by the field that held the credential."""


def refuse_credentials(
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, float]],
    message: str,
    tags: Sequence[str],
    author: str,
    data: Sequence[DataRef],
    code: CodeRef | None,
    paths: Sequence[str],
) -> None:
    """Raise InvalidInput for the first credential in what `register` would write.

    Args:
        params: The normalized params (`params.KEY.PATH` in messages).
        metrics: The checked metrics (their split and metric names are written).
        message: `--message`.
        tags: `--tag` values.
        author: The author to be recorded (`--author`, `MREG_AUTHOR` or git's user).
        data: The `--data` references (their URIs or paths as given).
        code: The code lineage, whose `repo` is the git remote `origin`'s URL.
        paths: The files' paths inside the version.

    Raises:
        InvalidInput: A credential was found; nothing has been written yet.
    """
    hits = find_in_data(dict(params), "params")
    if hits:
        raise InvalidInput(refusal(hits[0].path, hits[0], FIXES["params"]))
    hits = find_in_data({k: dict(v) for k, v in metrics.items()}, "metrics")
    if hits:
        raise InvalidInput(refusal(hits[0].path, hits[0], FIXES["metrics"]))
    check_text(message, "--message", FIXES["text"])
    for tag in tags:
        check_text(tag, "--tag", FIXES["text"])
    check_text(author, "the author (--author, MREG_AUTHOR or git's user.name)", FIXES["text"])
    for ref in data:
        check_text(ref.uri, "--data", FIXES["data"])
    if code is not None:
        check_text(code.repo, "the code's git remote 'origin'", FIXES["code"])
        check_text(code.branch or "", "the code's git branch", FIXES["code"])
    for path in paths:
        if find_in_text(path):
            check_text(path, f"the file {_masked(path)!r}", FIXES["files"])


def _masked(path: str) -> str:
    """`path` with each segment that holds a credential shown as `…`."""
    return "/".join("…" if find_in_text(seg) else seg for seg in path.split("/"))

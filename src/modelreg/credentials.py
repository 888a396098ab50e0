"""Credentials in text and plain data: what mreg refuses to write into a store (issue 19).

A manifest is immutable, content-addressed and pushed to every remote, so a secret written
into one can never be taken back. `register` therefore looks for credentials in everything it
would write (params, metric names, message, tags, author, data URIs, the code's git remote, the
requirements file) and refuses, naming where, before anything is written. This module only
finds them: given strings and plain data, it returns `Credential`s and never the secret.

What counts as a credential (modelled on gitleaks' rules and GitHub secret scanning's
provider patterns, keeping only shapes that ordinary metadata does not take):

- in a URL of any scheme: a password in the user info (`https://user:token@host`); a user
  name alone when it is a known token shape or a long opaque string (`https://ghp_...@host`),
  and, in a package index context (`index=True`: requirements files, where pip and git send
  a lone user name as the secret), any lone user name except over ssh; a query parameter
  named like a secret (`token`, `access_token`, `key`, `sig`, `X-Amz-Signature`...); in an
  index context, anaconda.org's `/t/TOKEN/` path;
- anywhere in text: the key shapes of `SHAPES` (AWS access key ids `AKIA`/`ASIA`, GitHub,
  GitLab, Slack, Google, Hugging Face, OpenAI/Anthropic, Stripe, PyPI and npm tokens, PEM
  private keys, Azure `AccountKey=`, JWTs); and `NAME=VALUE` / `NAME: VALUE` where NAME is
  named like a secret (`is_secret_name`) and VALUE looks like one (`_secretish`);
- in plain data (params): a non-empty string under a key named like a secret, and any of the
  above in a key or string value.

Not credentials: `${NAME}` and `$NAME` environment variable references (pip expands
`${NAME}` at install time), `git@host:org/repo` and `ssh://git@host/...`, numbers and
booleans, hex digests (no rule matches a SHA-256 or a git commit), tokenizer settings such as
`pad_token: "<pad>"`, `max_tokens`, `token_budget` or `tokenizer`. No entropy rule is used:
entropy finds digests and ids as often as secrets.

Model layer (docs/architecture.md): pure, no I/O.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from modelreg.errors import InvalidInput

__all__ = [
    "SHAPES",
    "Credential",
    "check_text",
    "find_in_data",
    "find_in_text",
    "find_in_url",
    "is_secret_name",
    "refusal",
]


@dataclass(frozen=True)
class Credential:
    """One credential found, described without the secret.

    Attributes:
        kind: A short id of the rule (`url-password`, `github-token`, `secret-param`...).
        label: What was found, in words (`a GitHub token`).
        hint: What may be shown of it: a URL's host, a token's public prefix, a name.
        in_url: Found in a URL (the message says `in a URL`).
        line: The 1-based line of the text it was found in, when scanning text.
        path: Where in plain data (`params.db.password`), when scanning data.
    """

    kind: str
    label: str
    hint: str = ""
    in_url: bool = False
    line: int | None = None
    path: str = ""

    def describe(self) -> str:
        """`in a URL (a password in the user info, for HOST)` or `(a GitHub token, ghp_…)`."""
        if self.in_url:
            return f"in a URL ({self.label}, for {self.hint or '?'})"
        return f"({self.label}, {self.hint})" if self.hint else f"({self.label})"


def refusal(where: str, found: Credential, fix: str) -> str:
    """The one-line message refusing `found` at `where` (never the secret itself).

    Args:
        where: The file and line, or the field (`requirements.txt:3`, `params.db.password`).
        found: The credential.
        fix: What to do instead, ending with what happened (`...; nothing was stored`).

    Returns:
        `WHERE: holds a credential DESCRIPTION; FIX`.
    """
    return f"{where}: holds a credential {found.describe()}; {fix}"


# -- key shapes ---------------------------------------------------------------------------------

_B = r"(?<![A-Za-z0-9_-])"  # a token starts at a boundary (not inside another word)
_E = r"(?![A-Za-z0-9_-])"
SHAPES: tuple[tuple[str, str, str, str], ...] = tuple(
    (kind, label, hint, pattern)
    for kind, label, hint, pattern in (
        ("aws-access-key-id", "an AWS access key id", "****…",
         _B + r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}" + _E),
        ("github-token", "a GitHub token", "gh*_…", _B + r"gh[pousr]_[A-Za-z0-9]{30,}" + _E),
        ("github-token", "a GitHub token", "github_pat_…", _B + r"github_pat_[A-Za-z0-9_]{22,}"),
        ("gitlab-token", "a GitLab token", "glpat-…",
         _B + r"gl(?:pat|dt|rt|ptt)-[A-Za-z0-9_-]{20,}"),
        ("slack-token", "a Slack token", "xox*-…", _B + r"xox[baprse]-[A-Za-z0-9-]{10,}"),
        ("google-api-key", "a Google API key", "AIza…", _B + r"AIza[A-Za-z0-9_-]{35}" + _E),
        ("huggingface-token", "a Hugging Face token", "hf_…", _B + r"hf_[A-Za-z0-9]{30,}" + _E),
        ("openai-key", "an OpenAI or Anthropic API key", "sk-…",
         _B + r"sk-(?:(?:proj|svcacct|admin|ant-api\d\d|ant-admin\d\d)-[A-Za-z0-9_-]{30,}"
         r"|[A-Za-z0-9]{20,}T3BlbkFJ[A-Za-z0-9]{20,}|(?=[A-Za-z]*[0-9])[A-Za-z0-9]{40,})" + _E),
        ("stripe-key", "a Stripe secret key", "sk_live_…",
         _B + r"[sr]k_(?:live|test|prod)_[A-Za-z0-9]{16,}" + _E),
        ("pypi-token", "a PyPI token", "pypi-…", _B + r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{16,}"),
        ("npm-token", "an npm token", "npm_…", _B + r"npm_[A-Za-z0-9]{36}" + _E),
        ("private-key", "a private key", "", r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
        ("azure-account-key", "an Azure storage account key", "AccountKey=…",
         r"(?<![A-Za-z])(?i:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{20,}"),
        ("jwt", "a JSON Web Token", "eyJ…",
         _B + r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*"),
    )
)  # fmt: skip
"""(kind, label, public hint, regular expression) of each well-known key shape."""


@functools.cache
def _shapes() -> tuple[re.Pattern[str], tuple[tuple[str, str, str, re.Pattern[str]], ...]]:
    """`SHAPES` compiled, and one pattern matching any of them.

    Compiled on first use (~10 ms), which commands that never scan text do not pay.
    """
    compiled = tuple((k, label, h, re.compile(p)) for k, label, h, p in SHAPES)
    return re.compile("|".join(f"(?:{p})" for *_, p in SHAPES)), compiled


# An AWS secret access key: 40 base64 characters, not all hex (a git commit is 40 hex digits).
_AWS_SECRET_RE = re.compile(
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[g-zG-Z/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
_ENV_RE = re.compile(r"(\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*|:)*")
_PLACEHOLDER_RE = re.compile(r"<[^<>]*>|\[[^\[\]]*\]|\*+|x+|X+|\.\.\.|…|changeme|none|null")
_ASSIGN_RE = re.compile(
    r"(?<![A-Za-z0-9_.-])([A-Za-z_][A-Za-z0-9_.-]*)[\"']?\s*[:=]\s*[\"']?([^\s\"',;]+)"
)


def _env_only(value: str) -> bool:
    """True when `value` is only `${NAME}` / `$NAME` references (and colons): no secret."""
    return bool(value) and _ENV_RE.fullmatch(value) is not None


def _secretish(value: str) -> bool:
    """True when a value assigned to a secret's name could be the secret itself.

    Empty values, environment references, placeholders (`<pad>`, `[MASK]`, `***`), numbers and
    booleans are not; short words are not either (`token: see docs`), so a value must have
    6 or more characters with a digit or a symbol, or 16 or more.
    """
    v = value.strip()
    if not v or _env_only(v) or _PLACEHOLDER_RE.fullmatch(v.lower()):
        return False
    if v.lower() in ("true", "false", "yes", "no", "on", "off") or re.fullmatch(r"[-+.\d]+", v):
        return False
    return len(v) >= 16 or (len(v) >= 6 and not v.isalpha())


# -- secret names -------------------------------------------------------------------------------

_SECRET_WORDS = frozenset(
    {"password", "passwd", "pwd", "passphrase", "secret", "token", "credential", "credentials",
     "apikey", "accesskey", "secretkey", "privatekey", "accountkey", "sastoken", "authtoken"}
)  # fmt: skip
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "secret", "private", "account", "encryption", "signing", "ssh", "auth",
     "master", "client", "subscription", "storage", "sas"}
)  # fmt: skip
# Tokenizer settings (`pad_token: "<pad>"`), not secrets: the word before `token` says so.
_TOKENIZER_WORDS = frozenset(
    {"pad", "eos", "bos", "unk", "mask", "sep", "cls", "start", "end", "special", "image",
     "audio", "video", "vision", "placeholder", "default", "chat", "stop", "prefix", "suffix",
     "middle", "additional", "decoder", "encoder", "sentence"}
)  # fmt: skip
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def is_secret_name(name: str) -> bool:
    """True when a key or variable name says it holds a secret.

    The name's last word decides (`db_password`, `hfToken`, `AWS_SECRET_ACCESS_KEY`,
    `client_secret`), so `token_budget`, `max_tokens`, `tokenizer` and `secret_santa_size`
    are not secret names; `key` counts only after a qualifier (`api_key`, `private_key`),
    and `pad_token`-style tokenizer settings are not secrets.

    Args:
        name: A param key, environment variable or option name.

    Returns:
        Whether its value should be treated as a credential.
    """
    words = [w.lower() for w in _WORD_RE.findall(name)]
    if not words:
        return False
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    if last == "key":
        return before in _KEY_QUALIFIERS
    if last == "token" and before in _TOKENIZER_WORDS:
        return False
    if last in ("string", "str") and before in ("connection", "conn"):
        return True
    return last in _SECRET_WORDS


# -- URLs ---------------------------------------------------------------------------------------

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")
_QUERY_WORDS = ("token", "secret", "password", "passwd", "signature", "credential", "apikey")
_QUERY_NAMES = frozenset({"key", "api_key", "api-key", "access_key", "sig", "pwd", "auth"})
_OPAQUE_RE = re.compile(r"(?=[A-Za-z_-]*\d)(?=[0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}")


def _shape_of(text: str) -> tuple[str, str, str] | None:
    for kind, label, hint, pattern in _shapes()[1]:
        if pattern.search(text):
            return kind, label, hint
    return None


def find_in_url(url: str, *, index: bool = False) -> Credential | None:
    """The credential a URL holds (see the module docstring), or None.

    Args:
        url: A URL, `scheme://...`.
        index: A package index or VCS context (requirements files), where a lone user name
            is sent as the secret (`https://TOKEN@host/simple`) and conda's `/t/TOKEN/` path
            holds one.

    Returns:
        The credential, whose hint is the URL's host, or None.
    """
    scheme, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    userinfo, at, hostport = authority.rpartition("@")
    host = (hostport if at else authority) or "?"

    def found(kind: str, label: str) -> Credential:
        return Credential(kind, label, host, in_url=True)

    if at and not _env_only(userinfo):
        user, colon, password = userinfo.partition(":")
        if password and not _env_only(password):
            return found("url-password", "a password in the user info")
        lone = not (colon and password)
        if lone and _shape_of(user) is not None:
            return found("url-token-user", "a token as the user name")
        if lone and index and not scheme.lower().endswith("ssh"):
            return found("url-token-user", "a user name, which pip and git send as a token")
        if lone and _OPAQUE_RE.fullmatch(user):
            return found("url-token-user", "an opaque token as the user name")
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    for key, value in parse_qsl(parts.query, keep_blank_values=False):
        k = key.lower()
        if (k in _QUERY_NAMES or any(w in k for w in _QUERY_WORDS)) and _query_secret(value):
            return found("url-query", f"a query parameter {key[:40]}=…")
    segments = parts.path.split("/")
    if index and len(segments) >= 3 and segments[1] == "t" and not _env_only(segments[2]):
        if segments[2]:
            return found("url-path-token", "a token in the path (/t/TOKEN/)")
    return None


def _query_secret(value: str) -> bool:
    return not _env_only(value) and not re.fullmatch(r"[-+.\d]+", value)


# -- text and data ------------------------------------------------------------------------------


def find_in_text(text: str, *, index: bool = False) -> list[Credential]:
    """Every credential in `text`, in order of lines, each with its 1-based line number.

    Per line: URLs (`find_in_url`), then key shapes (`SHAPES`; an AWS access key id with a
    40-character secret on its line is reported as the pair), then `NAME=VALUE` or
    `NAME: VALUE` assignments whose name `is_secret_name` and whose value could be a secret.

    Args:
        text: Any text: a file's content, a message, a tag, a URI.
        index: Read URLs as package index URLs (see `find_in_url`).

    Returns:
        The credentials found (empty when none).
    """
    out: list[Credential] = []
    for number, line in enumerate(text.splitlines() or [""], 1):
        for hit in _line_credentials(line, index):
            out.append(replace(hit, line=number))
    return out


def _line_credentials(line: str, index: bool) -> Iterator[Credential]:
    if "://" not in line and "=" not in line and ":" not in line:
        if _shapes()[0].search(line) is None:  # most text: one search, no per-rule scan
            return
    for url in _URL_RE.finditer(line):
        hit = find_in_url(url.group(), index=index)
        if hit is not None:
            yield hit
    for kind, label, hint, pattern in _shapes()[1]:
        shape = pattern.search(line)
        if shape is not None:
            shown = _public_prefix(hint, shape.group())
            if kind == "aws-access-key-id" and _AWS_SECRET_RE.search(line):
                yield Credential("aws-access-key", "an AWS access key id and secret key", shown)
            else:
                yield Credential(kind, label, shown)
    for match in _ASSIGN_RE.finditer(line):
        name, value = match.groups()
        if is_secret_name(name) and _secretish(value):
            label = "a value assigned to a secret's name"
            if "aws" in name.lower() and "secret" in name.lower():
                label = "an AWS secret access key"
            yield Credential("secret-assignment", label, f"{name[:60]}=…")


def _public_prefix(hint: str, matched: str) -> str:
    """The hint with each `*` replaced by the matched character: `gh*_…` → `ghp_…`.

    Only the rule's fixed prefix is shown (`AKIA`, `ghp_`, `xoxb-`), never the secret part.
    """
    padded = matched.ljust(len(hint))
    return "".join(m if h == "*" else h for h, m in zip(hint, padded[: len(hint)], strict=True))


def find_in_data(data: Any, path: str) -> list[Credential]:
    """Every credential in plain data (params): secret-named keys, keys, string values.

    A non-empty string under a key that `is_secret_name` is a credential (unless it is an
    environment reference or a placeholder); every other string, and every key, is scanned
    as text (`find_in_text`). Numbers, booleans and null are never credentials.

    Args:
        data: Mappings, lists and scalars, as loaded from YAML or JSON.
        path: The name of `data` in messages (`params`).

    Returns:
        The credentials found, each with the dotted `path` of its value
        (`params.db.password`, `params.urls[1]`).
    """
    out: list[Credential] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            key_hits = find_in_text(str(key))
            sub = f"{path}.{'…' if key_hits else key}"  # a key holding a secret is not shown
            out.extend(replace(c, path=sub, line=None) for c in key_hits)
            if isinstance(value, str) and is_secret_name(str(key)) and _param_secret(value):
                out.append(Credential("secret-param", "a value under a secret's name", path=sub))
            else:
                out.extend(find_in_data(value, sub))
    elif isinstance(data, (list, tuple)):
        for i, value in enumerate(data):
            out.extend(find_in_data(value, f"{path}[{i}]"))
    elif isinstance(data, str):
        out.extend(replace(c, path=path, line=None) for c in find_in_text(data))
    return out


def _param_secret(value: str) -> bool:
    """A string under a secret's name is one unless empty, a reference or a placeholder."""
    v = value.strip()
    return bool(v) and not _env_only(v) and not _PLACEHOLDER_RE.fullmatch(v.lower())


def check_text(text: str, where: str, fix: str) -> None:
    """Raise InvalidInput naming `where` (and the line, for several lines) if `text` holds one.

    Args:
        text: The text to be written (a message, a tag, a URI).
        where: How to name it (`--message`, `--tag`, `--data`).
        fix: What to do instead (see `refusal`).

    Raises:
        InvalidInput: `text` holds a credential.
    """
    hits = find_in_text(text)
    if hits:
        first = hits[0]
        at = f"{where} (line {first.line})" if "\n" in text.strip() else where
        raise InvalidInput(refusal(at, first, fix))

"""Webhooks as configuration and as messages (issue 19): what a hook is and what it sends.

A hook is a name, an http(s) URL, the audit actions it wants (the patterns of `mreg log
--action`: `promote`, `release.*`), the NAME of an environment variable holding its signing
secret (never the secret itself) and a payload format: `json` (the event and its audit
entry) or `slack` (`{"text": ...}`, which Slack's and Mattermost's incoming webhooks show).
Hooks live under `hooks:` in `config.yaml` (`StoreConfig.hooks`), local to one store and
never pushed, like remotes.

The messages: `body` (the bytes POSTed for one audit entry), `headers` (with the
HMAC-SHA256 signatures) and `event_id` (the delivery id, the same for an event on every
retry, in every clone, before and after a pull re-chains it). docs/hooks.md is the contract.

Storage layer, beside `config`, which parses hooks through it. Pure but for `secret`, which
reads one environment variable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from modelreg.audit import action_matches, action_pattern
from modelreg.errors import IntegrityError, InvalidInput
from modelreg.names import check_setting_name
from modelreg.version import __version__

__all__ = [
    "DEFAULT_EVENTS",
    "FORMATS",
    "HookSpec",
    "body",
    "check_hook_name",
    "check_url",
    "event_id",
    "headers",
    "parse_hooks",
    "ping_body",
    "summary",
]

DEFAULT_EVENTS = ("promote", "rollback", "release.*", "delete*", "policy*")
"""What a hook receives unless told otherwise: alias moves, releases, deletions, policy."""
FORMATS = ("json", "slack")
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def check_hook_name(name: str) -> str:
    """Return `name` if it is a valid hook name (like a remote's: `slack`, `ci-notify`)."""
    return check_setting_name("hook", name)


def check_url(url: str) -> str:
    """Return `url` if a hook may POST to it: http(s), a host, no credentials, no fragment.

    A user name or password in the URL (`https://user:token@host/`) is refused: the URL is
    written in `config.yaml`, which must never hold a credential (sign with --secret-env).
    """
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in url):
        raise InvalidInput(f"invalid hook URL {url!r}: spaces and control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        raise InvalidInput(f"invalid hook URL {url!r}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"hook URL {url!r}: only http:// and https:// URLs can receive hooks")
    if "@" in parts.netloc:
        raise InvalidInput(
            "hook URL holds credentials (user info before '@'): mreg never writes one in the "
            "store; sign deliveries with --secret-env VAR instead"
        )
    if not parts.hostname:
        raise InvalidInput(f"hook URL {url!r} has no host")
    if parts.fragment:
        raise InvalidInput(f"hook URL {url!r}: a fragment (#...) is never sent; remove it")
    return url


def _check_env(var: str) -> str:
    if not _ENV_RE.fullmatch(var):
        raise InvalidInput(
            f"--secret-env {var!r}: give the NAME of an environment variable (e.g. "
            "MREG_HOOK_SECRET), not the secret"
        )
    return var


@dataclass(frozen=True)
class HookSpec:
    """One configured webhook (`mreg hook add`)."""

    name: str
    url: str
    events: tuple[str, ...] = DEFAULT_EVENTS
    secret_env: str | None = None
    format: str = "json"

    @classmethod
    def make(
        cls,
        name: str,
        url: str,
        events: tuple[str, ...] = (),
        secret_env: str | None = None,
        format: str = "json",
    ) -> HookSpec:
        """A checked spec (InvalidInput, exit 2, for a bad name, URL, event, variable, format)."""
        if format not in FORMATS:
            raise InvalidInput(f"hook format {format!r}: use one of {', '.join(FORMATS)}")
        for e in events:
            action_pattern(e)
        return cls(
            check_hook_name(name),
            check_url(url),
            tuple(dict.fromkeys(events)) or DEFAULT_EVENTS,
            _check_env(secret_env) if secret_env is not None else None,
            format,
        )

    def wants(self, action: str) -> bool:
        """True when an audit entry of `action` is delivered to this hook."""
        return any(action_matches(action_pattern(e), action) for e in self.events)

    def secret(self) -> bytes | None:
        """The signing secret from the environment (None: unsigned; KeyError: variable unset)."""
        if self.secret_env is None:
            return None
        value = os.environ[self.secret_env]
        if not value:
            raise KeyError(self.secret_env)
        return value.encode()

    def to_dict(self) -> dict[str, Any]:
        """The hook as written under `hooks.NAME` in `config.yaml` (the name is the key)."""
        doc: dict[str, Any] = {"url": self.url, "events": list(self.events)}
        if self.secret_env is not None:
            doc["secret_env"] = self.secret_env
        if self.format != "json":
            doc["format"] = self.format
        return doc


def parse_hooks(doc: Any, source: str) -> dict[str, HookSpec]:
    """The `hooks:` mapping of a config document; IntegrityError naming the hook if bad."""
    if not isinstance(doc, dict):
        raise IntegrityError(f"{source}: hooks must map hook names to {{url, events, ...}}")
    out: dict[str, HookSpec] = {}
    for name, spec in doc.items():
        try:
            if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
                raise InvalidInput("expected a mapping with a url")
            unknown = set(spec) - {"url", "events", "secret_env", "format"}
            if unknown:
                raise InvalidInput(f"unknown keys {sorted(unknown)}")
            events = spec.get("events") or []
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                raise InvalidInput("events must be a list of action patterns")
            out[str(name)] = HookSpec.make(
                str(name),
                spec["url"],
                tuple(events),
                spec.get("secret_env"),
                str(spec.get("format", "json")),
            )
        except InvalidInput as exc:
            raise IntegrityError(f"{source}: hooks.{name}: {exc}") from None
    return out


# -- messages ------------------------------------------------------------------------------


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_id(entry: dict[str, Any]) -> str:
    """The delivery id of an audit entry: a digest of what it records, not of its place.

    `time`, `actor`, `action`, `model` and `details` survive a pull that re-chains local
    entries (only `seq`, `prev` and `hash` change), so a receiver that dedupes on this id
    sees each event once, whichever clone or retry delivered it.
    """
    keep = {k: entry.get(k) for k in ("time", "actor", "action", "model", "details")}
    return hashlib.sha256(_canonical(keep)).hexdigest()[:32]


def body(spec: HookSpec, entry: dict[str, Any], store: str) -> bytes:
    """The bytes POSTed to `spec` for one audit entry (`entry` as `mreg log --json` shows it)."""
    if spec.format == "slack":
        return _canonical({"text": summary(entry)})
    return _canonical(
        {
            "event": entry["action"],
            "id": event_id(entry),
            "model": entry.get("model"),
            "store": store,
            "entry": entry,
        }
    )


def ping_body(spec: HookSpec, store: str, now: str) -> bytes:
    """The bytes of `mreg hook test`: event `ping`, no audit entry."""
    if spec.format == "slack":
        return _canonical({"text": f"mreg: test message of hook {spec.name} from {store}"})
    doc = {"event": "ping", "id": f"ping-{now}", "model": None, "store": store, "hook": spec.name}
    return _canonical(doc)


def headers(
    spec: HookSpec, data: bytes, event: str, delivery: str, secret: bytes | None, now: int
) -> dict[str, str]:
    """The request headers; with a secret, both signatures of docs/hooks.md.

    `X-Mreg-Signature-256: sha256=HEX` is GitHub's scheme (HMAC-SHA256 of the body alone);
    `X-Mreg-Signature: t=UNIX,v1=HEX` is Stripe's (HMAC-SHA256 of `UNIX.` + body), which lets a
    receiver refuse a replay older than a few minutes.
    """
    out = {
        "Content-Type": "application/json",
        "User-Agent": f"mreg/{__version__}",
        "X-Mreg-Event": event,
        "X-Mreg-Delivery": delivery,
        "X-Mreg-Hook": spec.name,
    }
    if secret is not None:
        plain = hmac.new(secret, data, hashlib.sha256).hexdigest()
        stamped = hmac.new(secret, f"{now}.".encode() + data, hashlib.sha256).hexdigest()
        out["X-Mreg-Signature-256"] = f"sha256={plain}"
        out["X-Mreg-Signature"] = f"t={now},v1={stamped}"
    return out


def summary(entry: dict[str, Any]) -> str:
    """One line for people (the `slack` format): who did what to which model, and why."""
    d: dict[str, Any] = entry.get("details") or {}
    who, action, model = entry.get("actor", "?"), entry.get("action", "?"), entry.get("model")
    reason = f": {d['reason']}" if d.get("reason") else ""
    forced = " (forced past its gates)" if d.get("forced") else ""
    if action in ("promote", "rollback") and model:
        was = f" (was {d['previous']})" if d.get("previous") else ""
        if action == "promote":
            text = f"promoted {model}@{d.get('version')} to {d.get('alias')}{was}{forced}"
        else:
            text = f"rolled back {model}@{d.get('alias')} to {d.get('version')}{was}{forced}"
        return f"{who} {text}{reason}"
    if action.startswith("release.") and model:
        step = action.removeprefix("release.")
        state = f", {d['state']}" if d.get("state") else ""
        weight = f", canary weight {d['weight']}%" if d.get("weight") is not None else ""
        release = f" (release {d['release']})" if d.get("release") is not None else ""
        return f"{who} release {step} {model}{release}{state}{weight}{reason}"
    target = f" {model}" if model else ""
    version = f"@{d['version']}" if model and d.get("version") else ""
    return f"{who} {action}{target}{version}{reason}"

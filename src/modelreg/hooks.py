"""`mreg hook add|list|remove|test|deliver`: webhooks on audit events (issue 19).

A hook is configuration (`config.yaml`, `hooks:`; `modelreg.hookspec`), rewritten under the
store lock like a remote, plus a cursor in `hooks/NAME.json` (`modelreg.hookdelivery`). A new
hook starts at the current end of the audit trail, so it receives what happens from then on
(`from_start`: the whole trail). Adding and removing hooks is not audited, as adding and
removing remotes is not: hooks are this store's local settings, never pushed, and an entry
for them would travel to every clone that pulls. docs/hooks.md is the user's guide.

Domain layer: each function takes a `StoreHandle`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from modelreg import layout
from modelreg.config import StoreConfig
from modelreg.errors import InvalidInput, MregError, NotFound
from modelreg.handle import StoreHandle
from modelreg.hookcursor import Cursor, backlog, end_cursor, read_cursor, write_cursor
from modelreg.hookdelivery import DeliveryReport, deliver, post
from modelreg.hookspec import HookSpec, check_hook_name, check_url, headers, ping_body

__all__ = [
    "DeliveryFailed",
    "HookInfo",
    "HookTest",
    "add",
    "deliver_now",
    "hooks",
    "remove",
    "test",
]


class DeliveryFailed(MregError):
    """A webhook could not be delivered (`mreg hook deliver`, `mreg hook test`): exit 1."""


@dataclass(frozen=True)
class HookInfo:
    """A hook as `mreg hook list` shows it: its settings and how its deliveries go."""

    spec: HookSpec
    backlog: int
    delivered: int
    last_ok: str | None
    last_error: str | None
    last_error_time: str | None
    failing: bool
    next_try: float | None
    secret_set: bool | None
    """Whether the secret's variable is set in this process (None: the hook signs nothing)."""

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg hook add` and of each row of `mreg hook list`."""
        return {
            "name": self.spec.name,
            "url": self.spec.url,
            "events": list(self.spec.events),
            "format": self.spec.format,
            "secret_env": self.spec.secret_env,
            "secret_set": self.secret_set,
            "backlog": self.backlog,
            "delivered": self.delivered,
            "last_ok": self.last_ok,
            "last_error": self.last_error,
            "last_error_time": self.last_error_time,
            "failing": self.failing,
            "next_try_in": None
            if self.next_try is None
            else round(max(0.0, self.next_try - time.time()), 1),
        }


def _info(store: StoreHandle, spec: HookSpec) -> HookInfo:
    import os

    c = read_cursor(store.root, spec.name) or Cursor()
    secret_set = None if spec.secret_env is None else bool(os.environ.get(spec.secret_env))
    failing = c.attempts > 0
    return HookInfo(
        spec, backlog(store.root, spec), c.delivered, c.last_ok, c.last_error,
        c.last_error_time, failing, c.next_try if failing else None, secret_set,
    )  # fmt: skip


def _default_name(url: str, taken: Sequence[str]) -> str:
    host = (urlsplit(url).hostname or "hook").lower()
    base = re.sub(r"[^a-z0-9_-]+", "-", host).strip("-_")[:56] or "hook"
    base = base if base[0].isalpha() else f"hook-{base}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def add(
    store: StoreHandle,
    url: str,
    *,
    name: str | None = None,
    events: Sequence[str] = (),
    secret_env: str | None = None,
    format: str = "json",
    from_start: bool = False,
) -> HookInfo:
    """Configure a webhook; it receives the matching events appended from now on.

    `events`: audit actions, exact or a prefix ending in `*` (default `promote`,
    `rollback`, `release.*`, `delete*`, `policy*`); `secret_env`: the NAME of the variable
    holding the signing secret; `format`: `json` or `slack`; `from_start`: deliver the whole
    trail, not only what comes next. InvalidInput (exit 2) for a bad URL (credentials, not
    http(s)), name, event or format, or a name in use.
    """
    check_url(url)
    if name is not None:
        check_hook_name(name)
    with store.locked():
        cfg = StoreConfig.read(store.root)
        chosen = name or _default_name(url, list(cfg.hooks))
        spec = HookSpec.make(chosen, url, tuple(events), secret_env, format)
        if chosen in cfg.hooks:
            raise InvalidInput(f"hook {chosen!r} exists already (mreg hook remove it first)")
        # the cursor first: a crash before the config leaves a file no hook names, which
        # the next add of that name replaces
        write_cursor(store.root, chosen, Cursor() if from_start else end_cursor(store.root))
        new = replace(cfg, hooks={**cfg.hooks, chosen: spec})
        new.write(store.root)
        store.config = new
    return _info(store, spec)


def hooks(store: StoreHandle) -> list[HookInfo]:
    """Every configured hook, by name, with its backlog and its last delivery or error."""
    return [_info(store, spec) for _, spec in sorted(store.config.hooks.items())]


def remove(store: StoreHandle, name: str) -> HookSpec:
    """Remove a hook and its cursor; what it had not delivered is dropped for it."""
    check_hook_name(name)
    with store.locked():
        cfg = StoreConfig.read(store.root)
        if name not in cfg.hooks:
            raise NotFound(f"no hook named {name!r} (see mreg hook list)")
        spec = cfg.hooks[name]
        new = replace(cfg, hooks={k: v for k, v in cfg.hooks.items() if k != name})
        new.write(store.root)
        store.config = new
        layout.hook_state(store.root, name).unlink(missing_ok=True)
    return spec


@dataclass(frozen=True)
class HookTest:
    """The answer to a test message (`mreg hook test`)."""

    hook: str
    ok: bool
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg hook test`."""
        return {"hook": self.hook, "ok": self.ok, "error": self.error}


def test(store: StoreHandle, name: str, *, timeout: float = 10.0) -> HookTest:
    """POST a `ping` event to the hook now (signed as deliveries are); its cursor stays.

    Raises:
        NotFound: no such hook.
        DeliveryFailed: the receiver did not answer 2xx (exit 1).
    """
    spec = store.config.hooks.get(check_hook_name(name))
    if spec is None:
        raise NotFound(f"no hook named {name!r} (see mreg hook list)")
    try:
        secret = spec.secret()
    except KeyError:
        raise DeliveryFailed(
            f"hook {name}: environment variable {spec.secret_env} is not set (the signing secret)"
        ) from None
    data = ping_body(spec, str(store.root.parent), store.now())
    now = int(time.time())
    error = post(spec.url, data, headers(spec, data, "ping", f"ping-{now}", secret, now), timeout)
    if error is not None:
        raise DeliveryFailed(f"hook {name}: test message not delivered: {error}")
    return HookTest(name, True, None)


def deliver_now(
    store: StoreHandle,
    *,
    loop: bool = False,
    interval: float = 5.0,
    timeout: float = 10.0,
    on_round: Callable[[DeliveryReport], None] | None = None,
    rounds: int | None = None,
) -> DeliveryReport:
    """Deliver what waits now (`mreg hook deliver`); DeliveryFailed (exit 1) if some could not.

    With `loop`, a delivery round every `interval` seconds until interrupted (or `rounds`):
    hooks backing off after a failure are tried when due; the config is re-read each round,
    so hooks added or removed meanwhile are followed. Each round is passed to `on_round`.
    """
    if interval <= 0 or timeout <= 0:
        raise InvalidInput("--interval and --timeout must be positive")
    if not loop:
        report = deliver(store, timeout=timeout)
        if on_round is not None:
            on_round(report)
        if report.failed:
            h = report.failed[0]
            raise DeliveryFailed(
                f"hook {h.hook}: delivery failed ({h.error}); {h.backlog} event(s) wait"
            )
        return report
    done = 0
    while True:
        hooks_now = StoreConfig.read(store.root).hooks
        report = deliver(store, hooks=hooks_now, due_only=True, timeout=timeout)
        if on_round is not None:
            on_round(report)
        done += 1
        if rounds is not None and done >= rounds:
            return report
        time.sleep(interval)

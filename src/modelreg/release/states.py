"""The release states and their state machine: which action is allowed in which state. Pure.

Model layer (docs/architecture.md). An action not in the transition table (`TRANSITIONS`) for
the current state is refused with `TransitionRefused` and a message that says why
(`refusal`). `release.rollout` re-exports every name here.
"""

from __future__ import annotations

from typing import Literal

from modelreg.errors import InvalidInput, TransitionRefused

__all__ = [
    "ABORTED",
    "ACTIONS",
    "LIVE",
    "NONE",
    "PAUSED",
    "PROGRESSING",
    "PROMOTED",
    "STATES",
    "TRANSITIONS",
    "State",
    "refusal",
    "transition",
]

NONE = "none"
PROGRESSING = "progressing"
PAUSED = "paused"
PROMOTED = "promoted"
ABORTED = "aborted"
STATES = (NONE, PROGRESSING, PAUSED, PROMOTED, ABORTED)
LIVE = (PROGRESSING, PAUSED)
"""States in which the release splits traffic."""
ACTIONS = ("start", "set", "step", "pause", "resume", "promote", "abort")

State = Literal["none", "progressing", "paused", "promoted", "aborted"]

TRANSITIONS: dict[tuple[str, str], str] = {
    (NONE, "start"): PROGRESSING,
    (PROMOTED, "start"): PROGRESSING,
    (ABORTED, "start"): PROGRESSING,
    (PROGRESSING, "set"): PROGRESSING,
    (PROGRESSING, "step"): PROGRESSING,
    (PROGRESSING, "pause"): PAUSED,
    (PAUSED, "resume"): PROGRESSING,
    (PROGRESSING, "promote"): PROMOTED,
    (PAUSED, "promote"): PROMOTED,
    (PROGRESSING, "abort"): ABORTED,
    (PAUSED, "abort"): ABORTED,
}
"""(state, action) → the state after it. Every pair not listed is refused."""


def refusal(name: str, state: str, action: str) -> str:
    """Why `action` is not allowed in `state` (for the TransitionRefused message)."""
    if state == NONE:
        return (
            f"cannot {action} {name}: it has no release; start one with "
            f"'mreg release start {name} --canary VERSION'"
        )
    if action == "start":
        return (
            f"cannot start a release of {name}: one is already {state}; promote or abort it first"
        )
    if state in (PROMOTED, ABORTED):
        how = (
            "promoted to production"
            if state == PROMOTED
            else "aborted, all traffic on the baseline"
        )
        return (
            f"cannot {action} the release of {name}: it has ended ({how}); "
            f"start a new release, or use 'mreg rollback {name}' to move production back"
        )
    if state == PAUSED and action == "pause":
        return f"cannot pause the release of {name}: it is already paused"
    if state == PAUSED:
        return (
            f"cannot {action} the release of {name}: it is paused; resume it first, "
            "or abort it to send all traffic to the baseline"
        )
    if action == "resume":
        return f"cannot resume the release of {name}: it is not paused (it is {state})"
    return f"cannot {action} the release of {name} while it is {state}"  # pragma: no cover


def transition(name: str, state: str, action: str) -> str:
    """The state after `action`, or raise TransitionRefused saying why it is not allowed."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown release action {action!r}")
    after = TRANSITIONS.get((state, action))
    if after is None:
        raise TransitionRefused(refusal(name, state, action))
    return after

"""The serving side: route requests between a model's versions as its release says.

`Router.open(name, store=...)` follows the model's rollout manifest with a throttled change
check and never breaks on a bad manifest; `route()` returns a `Decision`. Importing this
package loads no CLI, git, S3, lock or semver module (a test checks it).
"""

from __future__ import annotations

from modelreg.serving.gateway import gateway_decision
from modelreg.serving.router import Decision, Router, RouterStats, Target

__all__ = ["Decision", "Router", "RouterStats", "Target", "gateway_decision"]

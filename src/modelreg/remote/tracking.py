"""What this store knows about a remote: `.modelreg/remotes/NAME/`.

- `tracking.json`: for every moving ref (aliases, state files, rollout manifests, the audit
  log), `base`, the SHA-256 of the remote's content when this store last synchronised it
  (push or pull). "The remote changed since your last pull" means "its content is no longer
  `base`". For the audit log, `base` is `"N:HASH"`: its entry count and last entry hash.
  Also `seen`: the token (ETag, inode+mtime...) and SHA-256 of every metadata file fetched,
  and the result of the conditional-write probe.
- `snapshot/`: the bytes of the remote metadata last fetched (manifests, refs, audit log),
  mirrored by path. It is a cache: each file is checked against its SHA-256 before use, so
  it is written without fsync; `mreg fetch` fills it, `status` and `pull` read from it
  whenever the remote's token has not changed, which makes a no-op sync one listing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.errors import IntegrityError
from modelreg.fsutil import atomic_write, safe_join, tmp_name
from modelreg.hashing import hash_bytes, is_digest
from modelreg.remote.backend import Entry

__all__ = ["Tracking"]

_FORMAT = 1


@dataclass
class Tracking:
    """The tracking state of one remote (mutable; `save()` writes it atomically)."""

    dir: Path
    url: str
    conditional: bool | None = None
    base: dict[str, str] = field(default_factory=dict)
    seen: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, dir: Path, url: str) -> Tracking:
        """Read the state; a missing, damaged or other-URL state starts afresh."""
        try:
            doc = json.loads((dir / "tracking.json").read_bytes())
            if doc.get("format") != _FORMAT or doc.get("url") != url:
                raise ValueError("other format or URL")
            seen = {str(k): (str(v[0]), str(v[1])) for k, v in doc["seen"].items()}
            return cls(dir, url, doc.get("conditional"), dict(doc["base"]), seen)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return cls(dir, url)

    def save(self) -> None:
        """Write `tracking.json` (temp, fsync, rename)."""
        doc = {
            "format": _FORMAT,
            "url": self.url,
            "conditional": self.conditional,
            "base": dict(sorted(self.base.items())),
            "seen": {k: list(v) for k, v in sorted(self.seen.items())},
        }
        atomic_write(self.dir / "tracking.json", json.dumps(doc, indent=1).encode())

    def snapshot_path(self, rel: str) -> Path:
        """Where the fetched copy of a remote metadata file lives."""
        return safe_join(self.dir / "snapshot", rel)

    def cached(self, rel: str, entry: Entry) -> bytes | None:
        """The fetched bytes of `rel` if the remote still has that version (same token)."""
        known = self.seen.get(rel)
        if known is None or known[0] != entry.token:
            return None
        try:
            data = self.snapshot_path(rel).read_bytes()
        except OSError:
            return None
        return data if hash_bytes(data) == known[1] else None

    def remember(self, rel: str, token: str, data: bytes) -> str:
        """Keep the bytes of a remote file as fetched (or as pushed); return their SHA-256."""
        digest = hash_bytes(data)
        path = self.snapshot_path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / tmp_name(path.name)
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a cache checked by digest on every read: no fsync needed
        self.seen[rel] = (token, digest)
        return digest

    def forget_missing(self, present: set[str]) -> None:
        """Drop what the remote no longer has from `seen` and the snapshot."""
        for rel in [r for r in self.seen if r not in present]:
            del self.seen[rel]
            self.snapshot_path(rel).unlink(missing_ok=True)

    def audit_base(self) -> tuple[int, str] | None:
        """The remote audit log as last synchronised: (entry count, last hash), or None."""
        raw = self.base.get("audit/log.jsonl")
        if raw is None:
            return None
        count, _, head = raw.partition(":")
        if not count.isdigit() or not (is_digest(head) or int(count) == 0):
            raise IntegrityError(f"{self.dir / 'tracking.json'}: malformed audit base {raw!r}")
        return int(count), head

    def set_audit_base(self, count: int, head: str) -> None:
        """Record the remote audit log as synchronised: `count` entries ending at `head`."""
        self.base["audit/log.jsonl"] = f"{count}:{head}"

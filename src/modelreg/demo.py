"""The embedded demo: a real (tiny) model trained, registered twice, promoted, rolled back.

`run_demo` needs no server and no network: it makes a store in a temporary directory,
trains a logistic-regression classifier in pure Python on a synthetic data set (two
versions, the second trained longer), registers both with their params and metrics,
promotes through a `production` gate, rolls back, then releases the second version again
as a canary to a simulated stream of users through the serving `Router`, step by step;
finally a third version with three times the errors is released at 5% and `release watch`
rolls it back automatically. It returns the steps it took.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelreg import yamlio
from modelreg.fsutil import atomic_write
from modelreg.store import Store, StoreConfig

__all__ = ["DemoReport", "DemoStep", "run_demo", "train_logreg"]

Row = tuple[list[float], int]


@dataclass(frozen=True)
class DemoStep:
    """One thing the demo did, with the equivalent command line."""

    command: str
    summary: str

    def to_dict(self) -> dict[str, str]:
        """Plain-data form."""
        return {"command": self.command, "summary": self.summary}


@dataclass
class DemoReport:
    """What the demo did, and where its store is (removed unless kept)."""

    store: str
    kept: bool
    steps: list[DemoStep] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg demo`."""
        return {"store": self.store, "kept": self.kept, "steps": [s.to_dict() for s in self.steps]}


def _dataset(n: int, seed: int) -> list[Row]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(4)]
        logit = 1.5 * x[0] - 2.0 * x[1] + 0.5 * x[2] + 0.3 * rng.gauss(0, 1)
        rows.append((x, int(logit > 0)))
    return rows


def _predict(w: list[float], b: float, x: list[float]) -> float:
    z = b + sum(wi * xi for wi, xi in zip(w, x, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def _scores(w: list[float], b: float, rows: list[Row]) -> dict[str, float]:
    tp = fp = fn = correct = 0
    for x, y in rows:
        p = int(_predict(w, b, x) >= 0.5)
        correct += p == y
        tp += p and y
        fp += p and not y
        fn += (not p) and y
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": round(correct / len(rows), 4), "f1": round(f1, 4)}


def train_logreg(rows: list[Row], epochs: int, lr: float) -> tuple[list[float], float]:
    """Plain gradient descent on the log loss; returns (weights, bias)."""
    w, b = [0.0] * len(rows[0][0]), 0.0
    for _ in range(epochs):
        gw, gb = [0.0] * len(w), 0.0
        for x, y in rows:
            err = _predict(w, b, x) - y
            gb += err
            for i, xi in enumerate(x):
                gw[i] += err * xi
        w = [wi - lr * g / len(rows) for wi, g in zip(w, gw, strict=True)]
        b -= lr * gb / len(rows)
    return w, b


def run_demo(workdir: Path | None = None, *, keep: bool = False) -> DemoReport:
    """Run the demo in `workdir` (default: a new temp directory, removed unless `keep`)."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="mreg-demo-")
        workdir = Path(tmp.name)
    try:
        report = _run(workdir)
        report.kept = keep or tmp is None
    finally:
        if tmp is not None and not keep:
            tmp.cleanup()
        elif tmp is not None:
            tmp._finalizer.detach()  # type: ignore[attr-defined]
    return report


def _run(workdir: Path) -> DemoReport:
    data = _dataset(900, seed=7)
    splits = {"train": data[:600], "validation": data[600:750], "test": data[750:]}
    store = Store.init(workdir)
    config = StoreConfig(gates={"production": ("test.f1 >= 0.9",)})
    atomic_write(store.root / "config.yaml", yamlio.dump(config.to_dict()))
    store = Store.open(store.root)
    report = DemoReport(store=str(store.root), kept=False)
    step = report.steps.append
    step(
        DemoStep(
            f"mreg init {workdir}", f"created {store.root} with gate production: test.f1 >= 0.9"
        )
    )
    data_file = workdir / "train.csv"
    data_file.write_text("\n".join(",".join(map(str, [*x, y])) for x, y in splits["train"]))

    author = "demo <demo@example.com>"
    for version, epochs in (("1.0.0", 3), ("1.1.0", 60)):
        params = {"model": "logistic-regression", "epochs": epochs, "lr": 0.5, "features": 4}
        w, b = train_logreg(splits["train"], epochs, params["lr"])  # type: ignore[arg-type]
        metrics = {s: _scores(w, b, rows) for s, rows in splits.items()}
        model_file = workdir / "build" / version / "model.json"
        model_file.parent.mkdir(parents=True)
        model_file.write_text(json.dumps({"weights": w, "bias": b}, indent=2))
        mv = store.register(
            "churn-classifier", [model_file], version=version, params=params,
            metrics=metrics, data=[str(data_file)], detect_code=False,
            message=f"logistic regression, {epochs} epochs", author=author,
        ).version  # fmt: skip
        step(
            DemoStep(
                f"mreg register churn-classifier {model_file.name} --version {version} "
                f"--param epochs={epochs} --metric test.f1={metrics['test']['f1']}",
                f"registered {mv.name}@{mv.version} id {mv.short_id}, test f1 "
                f"{metrics['test']['f1']}",
            )
        )
        store.promote(f"churn-classifier@{version}", "staging", actor=author)
        step(
            DemoStep(
                f"mreg promote churn-classifier@{version} --to staging", "staging → " + version
            )
        )

    for version in ("1.0.0", "1.1.0"):
        change = store.promote(f"churn-classifier@{version}", "production", actor=author)
        step(
            DemoStep(
                f"mreg promote churn-classifier@{version} --to production",
                f"production → {version}, generation {change.generation} (gate test.f1 >= 0.9 "
                "passed)",
            )
        )
    change = store.rollback(
        "churn-classifier", "production", reason="conversion dropped after 1.1.0", actor=author
    )
    step(
        DemoStep(
            "mreg rollback churn-classifier --reason 'conversion dropped after 1.1.0'",
            f"production → {change.version} (was {change.previous})",
        )
    )
    # Release 1.1.0 again, this time safely: a canary ramp with a simulated user stream.
    from modelreg.release.demo import run_canary_demo

    canary = run_canary_demo(store, "churn-classifier", "1.1.0", actor=author)
    for command, summary in canary.commands():
        step(DemoStep(command, summary))
    # A bad canary (3x the errors) is caught by `release watch` and rolled back automatically.
    from modelreg.analysis.demo import run_analysis_demo

    rollback = run_analysis_demo(store, "churn-classifier", workdir, actor=author)
    for command, summary in rollback.commands():
        step(DemoStep(command, summary))
    prod = store.resolve("churn-classifier@production")
    report_v = store.verify()
    trained_on = prod.data[0]
    step(
        DemoStep(
            "mreg show churn-classifier@production",
            f"production runs {prod.version} (id {prod.short_id}), trained on "
            f"{trained_on.uri} (sha256 {(trained_on.sha256 or '-')[:12]}), "
            f"test f1 {prod.metric('test.f1')}, put there by {author}",
        )
    )
    step(
        DemoStep(
            "mreg verify",
            f"{'ok' if report_v.ok else 'PROBLEMS'}: {report_v.audit_entries} audit entries "
            f"chained, {report_v.objects} objects re-hashed",
        )
    )
    return report

"""Train a tiny real model for the CI recipe: logistic regression in pure Python (no numpy).

Writes into OUT: model.json (the weights), params.json, metrics.json ({split: {metric: value}}
for mreg register --metrics-file) and data/train.csv (the training data, recorded as lineage).
Deterministic: the same arguments give byte-identical files, so a CI re-run registers nothing.

    python examples/ci/train.py --out build --epochs 300 --lr 0.5
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

Row = tuple[list[float], int]


def dataset(n: int, seed: int) -> list[Row]:
    """Synthetic fraud-like data: 4 features, a noisy linear boundary."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = [round(rng.gauss(0, 1), 6) for _ in range(4)]
        logit = 1.5 * x[0] - 2.0 * x[1] + 0.5 * x[2] + 0.3 * rng.gauss(0, 1)
        rows.append((x, int(logit > 0)))
    return rows


def predict(w: list[float], b: float, x: list[float]) -> float:
    z = b + sum(wi * xi for wi, xi in zip(w, x, strict=True))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def train(rows: list[Row], epochs: int, lr: float) -> tuple[list[float], float]:
    """Batch gradient descent on the log loss."""
    w, b = [0.0] * 4, 0.0
    for _ in range(epochs):
        gw, gb = [0.0] * 4, 0.0
        for x, y in rows:
            err = predict(w, b, x) - y
            gb += err
            gw = [g + err * xi for g, xi in zip(gw, x, strict=True)]
        w = [wi - lr * g / len(rows) for wi, g in zip(w, gw, strict=True)]
        b -= lr * gb / len(rows)
    return w, b


def scores(w: list[float], b: float, rows: list[Row]) -> dict[str, float]:
    tp = fp = fn = correct = 0
    for x, y in rows:
        p = int(predict(w, b, x) >= 0.5)
        correct += p == y
        tp += p and y
        fp += p and not y
        fn += (not p) and y
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"accuracy": round(correct / len(rows), 4), "f1": round(f1, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build"))
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rows = dataset(1000, args.seed)
    train_rows, test_rows = rows[:800], rows[800:]
    w, b = train(train_rows, args.epochs, args.lr)
    (args.out / "data").mkdir(parents=True, exist_ok=True)
    with open(args.out / "data" / "train.csv", "w") as fh:
        fh.write("x0,x1,x2,x3,label\n")
        fh.writelines(",".join(map(str, x)) + f",{y}\n" for x, y in train_rows)
    model = {
        "kind": "logistic-regression",
        "weights": [round(v, 8) for v in w],
        "bias": round(b, 8),
    }
    params = {"epochs": args.epochs, "lr": args.lr, "seed": args.seed}
    metrics = {"train": scores(w, b, train_rows), "test": scores(w, b, test_rows)}
    for name, doc in (("model", model), ("params", params), ("metrics", metrics)):
        (args.out / f"{name}.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(
        f"trained {args.epochs} epochs: test f1 {metrics['test']['f1']}, accuracy "
        f"{metrics['test']['accuracy']}"
    )


if __name__ == "__main__":
    main()

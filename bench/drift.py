#!/usr/bin/env python3
"""Operating characteristics of the drift statistics (issue 21): false alarms and power.

A training set of `--reference` rows (a number x ~ N(0, 1); a category of 5 values, `fr`
with 5%) is profiled with `modelreg.profiling.ProfileBuilder` (deciles, exactly as
`profile_file` does). Then `--windows` production windows of n rows each, for n in
`--sizes`, are drawn and compared with the profile by `modelreg.analysis.drift`:

- **null** windows, drawn from the training distribution: how often does each rule alarm?
- **shifted** windows: x's mean moved by 0.1, 0.25, 0.5 sd; `fr`'s share moved 5% -> 15%:
  how often does each rule see it (power)?

Rules, for numbers (categories in brackets):

- `psi>0.1`, `psi>0.2`: the fixed PSI thresholds of industry practice;
- `dist>0.1`: a fixed limit on the KS distance at the profile's edges [total variation];
- `psi>limit`: mreg's sample-size-aware limit, PSI above its no-drift 99% quantile
  chi2_0.99(B-1) (1/n_ref + 1/n) (`drift.psi_limit`, alpha 0.01);
- `psi>max(0.1,limit)`: the same with the practical floor of 0.1;
- `dist>ks_limit`: the KS distance above the asymptotic Kolmogorov 95% quantile
  (`drift.ks_limit`) [not applicable to total variation: not reported];
- `canary psi>max(0.1,limit)`: the rule of a release's `drift.feature.NAME.psi <= 0.1`
  check (`analysis.judge`): `drift.between_samples` of the window against a *baseline
  window* of the same n drawn from the training distribution (not the profile), failing
  when PSI is above 0.1 and above `psi_limit(bins, n, n)` (alpha 0.01 here; a release uses
  its check's share of alpha 0.05); one look;
- anchor `ks_test@0.05`: SciPy's two-sample KS test of the window against the training
  sample itself (raw values, not the profile) at alpha 0.05 [`chi2_test@0.05`: SciPy's
  chi-square test of the window's category counts against the training shares].

Also reported: the mean PSI of null windows next to its chi-square approximation
(B-1)(1/n_ref + 1/n).

Usage::

    python3 bench/drift.py --quick --no-save   # while developing (~4 min on 2 shared cores)
    python3 bench/drift.py                     # writes bench/results/drift-<date>.json/.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from modelreg.analysis import drift  # noqa: E402
from modelreg.profiling import CHUNK, ProfileBuilder  # noqa: E402

CATS = np.array(["de", "fr", "it", "es", "nl"])
SCENARIOS = {
    "null": {"shift": 0.0, "fr": 0.05},
    "shift 0.1 sd": {"shift": 0.1, "fr": 0.05},
    "shift 0.25 sd": {"shift": 0.25, "fr": 0.05},
    "shift 0.5 sd": {"shift": 0.5, "fr": 0.05},
    "fr 5% -> 15%": {"shift": 0.0, "fr": 0.15},
}


def categories(rng: np.random.Generator, n: int, fr: float) -> np.ndarray:
    rest = (1 - fr) / 4
    return rng.choice(CATS, size=n, p=[rest, fr, rest, rest, rest])


def build_reference(rng: np.random.Generator, n_ref: int):
    x = rng.normal(0, 1, n_ref)
    c = categories(rng, n_ref, 0.05)
    builder = ProfileBuilder({"x": "number", "country": "category"}, fmt="sample")
    for i in range(0, n_ref, CHUNK):
        part = slice(i, i + CHUNK)
        builder.add({"x": x[part].tolist(), "country": c[part].tolist()}, len(x[part]))
    return builder.profile(), np.sort(x)


def run(args: argparse.Namespace) -> dict:
    from scipy import stats as sp

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    profile, ref_x = build_reference(rng, args.reference)
    fx, fc = profile.feature("x"), profile.feature("country")
    ref_shares = np.array([c for _, c in fc.top] + [fc.other], dtype=float) / fc.count
    index = {v: i for i, (v, _) in enumerate(fc.top)}
    rows = []
    for name, sc in SCENARIOS.items():
        for n in args.sizes:
            hits: dict[str, int] = {}
            psi_sum = 0.0
            for _ in range(args.windows):
                x = rng.normal(sc["shift"], 1, n)
                c = categories(rng, n, sc["fr"])
                base_x = rng.normal(0, 1, n).tolist()
                base_c = categories(rng, n, 0.05).tolist()
                bx, _ = drift.between_samples("x", base_x, x.tolist())
                bc, _ = drift.between_samples("country", base_c, c.tolist(), kind="category")
                lbx = drift.psi_limit(bx.bins, bx.n_reference, bx.n_production)
                lbc = drift.psi_limit(bc.bins, bc.n_reference, bc.n_production)
                px, dx = drift.feature_drift(fx, x.tolist())
                pc, dc = drift.feature_drift(fc, c.tolist())
                psi_sum += px.value
                lx = drift.psi_limit(px.bins, px.n_reference, px.n_production)
                lc = drift.psi_limit(pc.bins, pc.n_reference, pc.n_production)
                ks_p = sp.ks_2samp(x, ref_x, method="asymp").pvalue
                counts = np.zeros(len(ref_shares))
                for v, k in zip(*np.unique(c, return_counts=True), strict=True):
                    counts[index.get(str(v), len(ref_shares) - 1)] += k
                seen = ref_shares > 0  # values the training set never had: drift outright
                chi_p = (
                    0.0
                    if counts[~seen].sum()
                    else sp.chisquare(counts[seen], ref_shares[seen] * n).pvalue
                )
                for rule, fired in (
                    ("num psi>0.1", px.value > 0.1),
                    ("num psi>0.2", px.value > 0.2),
                    ("num dist>0.1", dx.value > 0.1),
                    ("num psi>limit", px.value > lx),
                    ("num psi>max(0.1,limit)", px.value > max(0.1, lx)),
                    ("num dist>ks_limit", dx.value > drift.ks_limit(dx.n_reference, n)),
                    ("num canary psi>max(0.1,limit)", bx.value > max(0.1, lbx)),
                    ("num ks_test@0.05", ks_p < 0.05),
                    ("cat psi>0.1", pc.value > 0.1),
                    ("cat psi>0.2", pc.value > 0.2),
                    ("cat dist>0.1", dc.value > 0.1),
                    ("cat psi>limit", pc.value > lc),
                    ("cat psi>max(0.1,limit)", pc.value > max(0.1, lc)),
                    ("cat canary psi>max(0.1,limit)", bc.value > max(0.1, lbc)),
                    ("cat chi2_test@0.05", chi_p < 0.05),
                ):
                    hits[rule] = hits.get(rule, 0) + bool(fired)
            rows.append(
                {
                    "scenario": name,
                    "n": n,
                    "windows": args.windows,
                    "mean_psi_x": psi_sum / args.windows,
                    "chi2_approx_psi_x": (fx.shares and len(fx.shares) - 1)
                    * (1 / fx.count + 1 / n),
                    "rates": {k: v / args.windows for k, v in hits.items()},
                }
            )
            print(
                f"{name:14} n={n:>6}: "
                + ", ".join(f"{k}={v / args.windows:.3f}" for k, v in hits.items()),
                flush=True,
            )
    return {
        "bench": "drift",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "reference_rows": args.reference,
        "bins": len(fx.shares),
        "windows": args.windows,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": rows,
    }


RULES = [
    "psi>0.1",
    "psi>0.2",
    "dist>0.1",
    "psi>limit",
    "psi>max(0.1,limit)",
    "dist>ks_limit",
    "canary psi>max(0.1,limit)",
]


def markdown(doc: dict) -> str:
    out = [
        f"# Drift statistics: false alarms and power ({doc['date'][:10]})",
        "",
        f"Reference: {doc['reference_rows']:,} training rows profiled ({doc['bins']} bins for x);"
        f" {doc['windows']} windows per cell; seed {doc['seed']}; {doc['seconds']} s."
        " Each cell: the share of windows in which the rule alarmed (null: false alarms;"
        " other rows: power). `bench/drift.py` explains the rules.",
        "",
    ]
    for prefix, anchor, title in (
        ("num", "ks_test@0.05", "Number x ~ N(0, 1)"),
        ("cat", "chi2_test@0.05", "Category (5 values, fr 5%)"),
    ):
        rules = [r for r in RULES if f"{prefix} {r}" in doc["rows"][0]["rates"]] + [anchor]
        out += [f"## {title}", "", "| scenario | n | " + " | ".join(f"`{r}`" for r in rules) + " |"]
        out.append("|---|---:|" + "---:|" * len(rules))
        for row in doc["rows"]:
            if prefix == "num" and row["scenario"].startswith("fr"):
                continue
            if prefix == "cat" and row["scenario"].startswith("shift"):
                continue
            cells = [f"{row['rates'][f'{prefix} {r}']:.3f}" for r in rules]
            out.append(f"| {row['scenario']} | {row['n']:,} | " + " | ".join(cells) + " |")
        out.append("")
    out += [
        "## Mean PSI of x under no drift",
        "",
        "| n | measured | (B-1)(1/n_ref + 1/n) |",
        "|---:|---:|---:|",
    ]
    for row in doc["rows"]:
        if row["scenario"] == "null":
            out.append(
                f"| {row['n']:,} | {row['mean_psi_x']:.4f} | {row['chi2_approx_psi_x']:.4f} |"
            )
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 10000])
    ap.add_argument("--reference", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="100 windows, 20,000 reference rows")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.windows, args.reference = 100, 20_000
    doc = run(args)
    text = markdown(doc)
    print(text)
    if not args.no_save:
        base = BENCH_DIR / "results" / f"drift-{doc['date'][:10]}"
        base.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
        base.with_suffix(".md").write_text(text)
        print(f"wrote {base}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

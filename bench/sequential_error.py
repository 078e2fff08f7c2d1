"""Error rates and power of the rounds-of-seeds decision rule (`harness.report.sequential`), simulated
through the same code the report and `harness sweep` use (`run_looks` + `first_verdict`).

Each simulated study is a family of H hypotheses A vs B with per-example scores (x100): a seed effect
(SD ``--sd-seed``), an example effect shared by A and B, a seed x example interaction (SD ``--sd-inter``)
over M examples. It prints, side by side on the same simulated data:

- the family-wise rate of false "better"/"worse" verdicts when every difference is 0, for the rule
  (rounds of 5 up to 20 seeds, repeated CIs, Bonferroni over H) and for the naive rule that tests every
  look at the unadjusted alpha and stops at the first p < alpha;
- the rate of false "equivalent" verdicts when the difference is the margin;
- the chance of each verdict, and the mean seeds spent, for real differences, against a fixed 5 seeds
  and a fixed 20 seeds.

    python bench/sequential_error.py --studies 5000 --boot 1000 --out bench/results/2026-12-06-sequential-error.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy

from harness.report.inference import compare, mean_score
from harness.report.sequential import BETTER, EQUIVALENT, UNRESOLVED, WORSE, first_verdict, run_looks

LOOKS = [5, 10, 15, 20]


def simulate(rng, delta, budget, m, sd_seed, sd_example, sd_inter):
    example = rng.normal(0, sd_example, m)

    def config(shift):
        return 30 + shift + rng.normal(0, sd_seed, (budget, 1)) + example + rng.normal(0, sd_inter, (budget, m))

    return config(delta), config(0.0)


def rule(a, b, looks, alpha_h, margin, boot):
    verdict = first_verdict(run_looks(((a[:n], b[:n]) for n in looks), mean_score, looks, alpha_h, margin, n_boot=boot))
    return verdict[1].verdict, looks[verdict[0]]


def naive(a, b, looks, alpha, boot):
    """Every look at the unadjusted alpha, stop at the first significant one."""
    for n in looks:
        c = compare(a[:n], b[:n], mean_score, n_boot=boot)
        if c.p_value < alpha:
            return BETTER if c.diff > 0 else WORSE
    return UNRESOLVED


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=2000)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--hypotheses", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--margin", type=float, default=1.5)
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--sd-seed", type=float, default=1.0)
    ap.add_argument("--sd-example", type=float, default=8.0)
    ap.add_argument("--sd-inter", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    h, alpha_h = args.hypotheses, args.alpha / args.hypotheses
    sim = dict(m=args.examples, sd_seed=args.sd_seed, sd_example=args.sd_example, sd_inter=args.sd_inter)
    start = time.perf_counter()

    fwer_rule = fwer_naive = 0
    for _ in range(args.studies):
        family = [simulate(rng, 0.0, LOOKS[-1], **sim) for _ in range(h)]
        fwer_rule += any(rule(a, b, LOOKS, alpha_h, args.margin, args.boot)[0] in (BETTER, WORSE) for a, b in family)
        fwer_naive += any(naive(a, b, LOOKS, alpha_h, args.boot) in (BETTER, WORSE) for a, b in family)
    n_eq = args.studies * h // 4
    false_eq = sum(
        rule(*simulate(rng, args.margin, LOOKS[-1], **sim), LOOKS, alpha_h, args.margin, args.boot)[0] == EQUIVALENT
        for _ in range(n_eq)
    )

    def mc(p, n):
        return np.sqrt(max(p * (1 - p), 1e-12) / n)

    n = args.studies
    lines = [
        "# Rounds of seeds: error rates and power, simulated through the report's decision code",
        "",
        f"`python bench/sequential_error.py --studies {n} --boot {args.boot} --hypotheses {h}` "
        f"(seed {args.seed}; {time.perf_counter() - start:.0f} s for the error rates). Simulated per-example "
        f"scores: seed SD {args.sd_seed}, example SD {args.sd_example} (shared by A and B), seed x example SD "
        f"{args.sd_inter}, {args.examples} examples; rounds {LOOKS} seeds; family alpha {args.alpha} over {h} "
        f"hypotheses (Bonferroni: {alpha_h:g} each); margin {args.margin}; O'Brien-Fleming-type spending.",
        "",
        "| what | rate | Monte-Carlo SE | bound |",
        "|---|---|---|---|",
        f"| family-wise false better/worse, all differences 0 (the rule) | {fwer_rule / n:.4f} | "
        f"{mc(fwer_rule / n, n):.4f} | {args.alpha} |",
        f"| the same, naive rule: every look at {alpha_h:g}, stop at the first p below | {fwer_naive / n:.4f} | "
        f"{mc(fwer_naive / n, n):.4f} | {args.alpha} |",
        f"| false equivalence of one hypothesis, difference = margin ({n_eq} studies) | {false_eq / n_eq:.4f} | "
        f"{mc(false_eq / n_eq, n_eq):.4f} | {alpha_h:g} |",
        "",
        "Verdicts of one hypothesis (at alpha " + f"{alpha_h:g}) against fixed seed counts, {n // 4} studies each:",
        "",
        "| true difference | design | better | equivalent | unresolved | worse | mean seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for delta in (0.0, 1.0, 2.0, 3.0):
        for name, looks in (("rounds 5..20", LOOKS), ("fixed 5", [5]), ("fixed 20", [20])):
            got = [
                rule(*simulate(rng, delta, 20, **sim), looks, alpha_h, args.margin, args.boot) for _ in range(n // 4)
            ]
            share = {v: np.mean([g[0] == v for g in got]) for v in (BETTER, EQUIVALENT, UNRESOLVED, WORSE)}
            lines.append(
                f"| {delta} | {name} | {share[BETTER]:.3f} | {share[EQUIVALENT]:.3f} | {share[UNRESOLVED]:.3f} | "
                f"{share[WORSE]:.3f} | {np.mean([g[1] for g in got]):.1f} |"
            )
    lines += [
        "",
        f"Total {time.perf_counter() - start:.0f} s; scipy {scipy.__version__}, numpy {np.__version__}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

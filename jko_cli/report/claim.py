"""The claim as tests over seeds: does a method's quality depend on alpha, and is JKO-Flow at its worst alpha
as good as OT-Flow at its best?

Design. Runs of one seed share everything but alpha and the method: the training, validation and test points,
the initial parameters, the latent and reference draws of the metrics. So seed is a block, and the runs of one
(data set, method) form an alpha × seed table y[a, s] (one metric). The additive model y = μ + α_a + β_s + ε
separates the alpha effect α_a from what a seed shares (β_s); the residual ε is what training leaves to chance
at a given alpha and seed: the seed-to-seed noise that an alpha effect must exceed.

1. **Alpha effect** (:func:`alpha_effect`), null H0: α_a = 0 for every alpha. The randomised-block statistic
   F = [SS_alpha / (A − 1)] / [SS_res / ((A − 1)(S − 1))]. Its p-value is given twice: from the F(A − 1,
   (A − 1)(S − 1)) distribution (normal errors) and by permutation (alpha labels shuffled within each seed,
   which H0 makes exchangeable; :data:`PERMUTATIONS` draws, seeded: the report is reproducible). The verdict
   uses the permutation p, which needs no normal errors (OT-Flow's failed runs are far from normal). Its
   resolution is limited by the table: the smallest p a 5 × 3 table can reach is 1/(5!)² ≈ 7e-5, and a single
   deviating alpha, however large, shares its rank with every permutation that puts the three deviating values
   in one row (1 in 25), so its p is what the other alphas' noise adds to that: typically 1e-3 to 0.04, where
   the F distribution's p keeps falling with the deviation. Only the seeds present at every alpha enter.
2. **JKO-Flow's worst against OT-Flow's best** (:func:`worst_against_best`): per seed, Δ_s = JKO-Flow at the
   alpha of its highest mean minus OT-Flow at the alpha of its lowest mean (lower is better); mean Δ with a
   95 % t confidence interval over seeds. Choosing both alphas from the same runs favours OT-Flow (its best is
   picked for being low, JKO-Flow's worst for being high), so Δ < 0 is a conservative finding for JKO-Flow.
   With ``resolved_only``, OT-Flow's best is picked among its *resolved* cells only (:func:`resolved`: no seed's
   solver error |nll_test_2x − nll_test| above :data:`SOLVER_TOL`). A cell whose NLL moves by a nat when the
   integration steps double is not the continuous flow's density, and at large alpha OT-Flow's lowest mean is
   often such a cell; JKO-Flow's worst is still picked among all its cells (conservative for JKO-Flow).

With one seed neither test exists (no residual), and the report says so instead of guessing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from jko_cli.report.collect import Run, by_seed

PERMUTATIONS = 9999
LEVEL = 0.05  # a p-value below it is "an alpha effect"; the CI is 1 − LEVEL
OT, JKO = "OT-Flow", "JKO-Flow"
# nats: a cell whose NLL changes by more when the integration steps double, in some seed, is not resolved. On the
# paper's runs (docs/results/runs/paper) JKO-Flow's solver error is ≤ 0.004 in all 120 runs and OT-Flow's ≤ 0.002
# at alpha ≤ 10; at alpha = 50 its largest over the seeds is 0.05–24 nats on seven of the eight sets.
SOLVER_TOL = 0.01


def seed_table(cells: dict[float, list[Run]], key: str) -> tuple[list[float], list, np.ndarray]:
    """(alphas, seeds, y (A, S)): the metric for the seeds present at every alpha (sorted)."""
    per_alpha = {a: by_seed(runs, key) for a, runs in cells.items()}
    per_alpha = {a: v for a, v in per_alpha.items() if v}
    seeds = sorted(set.intersection(*(set(v) for v in per_alpha.values())), key=str) if per_alpha else []
    alphas = sorted(per_alpha)
    y = np.array([[per_alpha[a][s] for s in seeds] for a in alphas], dtype=float).reshape(len(alphas), len(seeds))
    return alphas, seeds, y


def block_f(y: np.ndarray) -> tuple[float, float, float]:
    """(F, SS_alpha, SS_res) of the additive alpha × seed model for y (A, S)."""
    a_mean, s_mean, grand = y.mean(1, keepdims=True), y.mean(0, keepdims=True), y.mean()
    ss_alpha = float(y.shape[1] * ((a_mean - grand) ** 2).sum())
    ss_res = float(((y - a_mean - s_mean + grand) ** 2).sum())
    df1, df2 = y.shape[0] - 1, (y.shape[0] - 1) * (y.shape[1] - 1)
    f = (ss_alpha / df1) / (ss_res / df2) if ss_res > 0 else (math.inf if ss_alpha > 0 else math.nan)
    return f, ss_alpha, ss_res


def permutation_p(y: np.ndarray, f_obs: float, n: int = PERMUTATIONS, seed: int = 0) -> float:
    """P(F ≥ F_obs) with the alpha labels permuted independently within each seed (column): (1 + hits)/(1 + n)."""
    rng = np.random.default_rng(seed)
    A, S = y.shape
    idx = np.argsort(rng.random((n, A, S)), axis=1)  # n independent within-column permutations
    yp = np.take_along_axis(np.broadcast_to(y, (n, A, S)), idx, axis=1)
    a_mean, s_mean = yp.mean(2, keepdims=True), y.mean(0, keepdims=True)[None]
    grand = y.mean()
    ss_alpha = S * ((a_mean - grand) ** 2).sum((1, 2))
    ss_res = ((yp - a_mean - s_mean + grand) ** 2).sum((1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ss_alpha / (A - 1)) / (ss_res / ((A - 1) * (S - 1)))
    hits = np.count_nonzero(f >= f_obs * (1 - 1e-12))
    return float((1 + hits) / (1 + n))


@dataclass
class AlphaEffect:
    """The alpha-effect test of one (data set, method, metric)."""

    alphas: int
    seeds: int
    spread: float  # worst − best of the per-alpha means
    noise_sd: float  # residual sd, √(SS_res / df_res): one run's seed-to-seed noise at fixed alpha
    f: float
    p_f: float
    p_perm: float

    @property
    def significant(self) -> bool:
        return self.p_perm < LEVEL


def alpha_effect(cells: dict[float, list[Run]], key: str) -> AlphaEffect | None:
    """The randomised-block test (module docstring) for one method's runs by alpha; None with fewer than two
    alphas or two seeds common to all of them."""
    from scipy import stats

    alphas, seeds, y = seed_table(cells, key)
    if len(alphas) < 2 or len(seeds) < 2:
        return None
    f, _, ss_res = block_f(y)
    df1, df2 = len(alphas) - 1, (len(alphas) - 1) * (len(seeds) - 1)
    means = y.mean(1)
    p_f = float(stats.f.sf(f, df1, df2)) if math.isfinite(f) else (0.0 if f == math.inf else math.nan)
    p_perm = permutation_p(y, f) if math.isfinite(f) or f == math.inf else math.nan
    return AlphaEffect(len(alphas), len(seeds), float(means.max() - means.min()), math.sqrt(ss_res / df2),
                       f, p_f, p_perm)


@dataclass
class WorstAgainstBest:
    """JKO-Flow at its worst alpha minus OT-Flow at its best, paired by seed."""

    jko_alpha: float
    ot_alpha: float
    seeds: int
    delta: float
    low: float  # the confidence interval
    high: float


def resolved(runs: list[Run]) -> bool:
    """No run's solver error |nll_test_2x − nll_test| is above SOLVER_TOL, or not finite where nll_test is (the
    NLL blew up with twice the steps). A run without nll_test_2x, or without a finite nll_test, is not evidence
    against the cell."""
    for run in runs:
        nll, nll_2x = run.value("nll_test"), run.value("nll_test_2x")
        if "nll_test_2x" in run.metrics and math.isfinite(nll) and not abs(nll_2x - nll) <= SOLVER_TOL:
            return False
    return True


def worst_against_best(by_alpha: dict[float, dict[str, list[Run]]], key: str,
                       resolved_only: bool = False) -> WorstAgainstBest | None:
    """Module docstring, test 2; None without both methods at some alpha (OT-Flow's resolved cells with
    ``resolved_only``) or with fewer than two common seeds."""
    from scipy import stats

    def means(method: str, only_resolved: bool = False) -> dict[float, float]:
        values = {a: by_seed(cell[method], key) for a, cell in by_alpha.items()
                  if method in cell and (not only_resolved or resolved(cell[method]))}
        return {a: float(np.mean(list(v.values()))) for a, v in values.items() if v}

    jko, ot = means(JKO), means(OT, resolved_only)
    if not jko or not ot:
        return None
    a_j, a_o = max(jko, key=jko.get), min(ot, key=ot.get)
    worst, best = by_seed(by_alpha[a_j][JKO], key), by_seed(by_alpha[a_o][OT], key)
    seeds = sorted(set(worst) & set(best), key=str)
    if len(seeds) < 2:
        return None
    d = np.array([worst[s] - best[s] for s in seeds])
    half = stats.t.ppf(1 - LEVEL / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return WorstAgainstBest(a_j, a_o, len(d), float(d.mean()), float(d.mean() - half), float(d.mean() + half))


def holm(pvalues: dict) -> dict:
    """Holm's step-down adjustment of a family of p-values (key → p; NaN kept): controls the chance of any
    false 'alpha effect' across the family at the nominal level."""
    items = sorted(((p, k) for k, p in pvalues.items() if math.isfinite(p)), key=lambda t: t[0])
    out, running = {k: math.nan for k in pvalues}, 0.0
    for i, (p, k) in enumerate(items):
        running = max(running, min(1.0, (len(items) - i) * p))
        out[k] = running
    return out

"""Agreement statistics, as pure functions: proportions, Cohen's and Fleiss' kappa, Krippendorff's alpha
(nominal), Spearman's rho and Kendall's tau-b, each with an interval.

Every function returns an `Estimate`. Input that leaves a statistic undefined (no rows, one row, everyone
giving the same single answer, a constant score) gives an Estimate whose value is None and whose `reason`
says why in plain words, never NaN and never an exception; an interval that cannot be had (too few rows,
too few usable resamples) leaves `low` / `high` None with the reason, beside a value that can.

Intervals:
- proportions: Wilson score interval (studio.review.gate.wilson_interval);
- Cohen's kappa: kappa ± z·SE with the large-sample variance of Fleiss, Cohen & Everitt (1969), which does
  not assume kappa = 0 (statsmodels' `cohens_kappa` computes the same); clipped to [-1, 1]. Perfect
  agreement would get a zero-width interval, so it gets none (see below);
- Fleiss' kappa and Krippendorff's alpha: percentile bootstrap over units (rows), 1,000 resamples from a
  fixed seed, so the same ratings always give the same interval;
- Spearman: Fisher z with the standard error of Bonett & Wright (2000), √((1 + ρ²/2)/(n − 3));
- Kendall's tau-b: Fisher z with the standard error of Fieller, Hartley & Pearson (1957), √(0.437/(n − 4)).
At perfect agreement (kappa, alpha or a correlation of exactly ±1) every one of these intervals collapses to
the point, which would claim certainty from a handful of rows; no interval is given there (`PERFECT`), and
the share of agreement (Wilson) carries the uncertainty.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from studio.review.gate import wilson_interval

PERFECT = "no interval: every row agrees, and these intervals have no width there"
RESAMPLES = 1_000
BOOTSTRAP_SEED = 19
"""Fixed: an interval must not change between two looks at the same reviews."""


@dataclass(frozen=True)
class Estimate:
    value: float | None
    """None when the statistic is undefined for the data; `reason` says why."""
    low: float | None = None
    high: float | None = None
    n: int = 0
    """Rows (units) the statistic was computed on."""
    reason: str = ""
    """Why the value, or its interval, is missing; empty when both are there."""

    @property
    def defined(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def _clip(x: float, lo: float = -1.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


# --- proportions ---------------------------------------------------------------------------------------


def wilson(k: int, n: int, confidence: float = 0.95) -> Estimate:
    """k of n, with its Wilson score interval."""
    if n <= 0:
        return Estimate(None, n=0, reason="no rows")
    low, high = wilson_interval(k, n, confidence)
    return Estimate(k / n, low, high, n)


# --- Cohen's kappa -------------------------------------------------------------------------------------


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable], confidence: float = 0.95) -> Estimate:
    """Cohen's kappa of two raters who rated the same rows (a[i] and b[i] are one row's two labels).

    kappa = (p_o − p_e) / (1 − p_e), p_o the observed share of agreement, p_e the share expected by chance
    from each rater's own label frequencies.
    """
    if len(a) != len(b):
        raise ValueError(f"two raters need the same number of ratings, got {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        return Estimate(None, n=n, reason="no rows" if n == 0 else "one row only")
    labels = list(dict.fromkeys([*a, *b]))
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    p_o, p_e = float(np.trace(p)), float(rows @ cols)
    if p_e >= 1 - 1e-12:
        return Estimate(None, n=n, reason=f"both gave the same single answer on all {n} rows, so agreement "
                                          "beyond chance cannot be measured")
    kappa = (p_o - p_e) / (1 - p_e)
    # Fleiss, Cohen & Everitt (1969): the large-sample variance of kappa, not assuming kappa = 0.
    diag = np.diag(p)
    term_a = float((diag * (1 - (rows + cols) * (1 - kappa)) ** 2).sum())
    off = p * (cols[:, None] + rows[None, :]) ** 2
    np.fill_diagonal(off, 0.0)
    term_b = (1 - kappa) ** 2 * float(off.sum())
    term_c = (kappa - p_e * (1 - kappa)) ** 2
    se = math.sqrt(max(0.0, term_a + term_b - term_c)) / ((1 - p_e) * math.sqrt(n))
    if kappa >= 1 - 1e-12:
        return Estimate(1.0, n=n, reason=PERFECT)
    z = _z(confidence)
    return Estimate(kappa, _clip(kappa - z * se), _clip(kappa + z * se), n)


# --- Fleiss' kappa -------------------------------------------------------------------------------------


def _percentile_interval(replicates: np.ndarray, confidence: float, n: int, value: float) -> Estimate:
    usable = replicates[np.isfinite(replicates)]
    if value >= 1 - 1e-12:
        return Estimate(1.0, n=n, reason=PERFECT)
    if usable.size < len(replicates) / 2:
        return Estimate(value, n=n, reason="too few rows for an interval: most resamples leave it undefined")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(usable, [tail, 100 - tail])
    return Estimate(value, _clip(float(low)), _clip(float(high)), n)


def _resample_weights(units: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, units): how often each unit is drawn in each bootstrap resample."""
    drawn = np.random.default_rng(seed).integers(0, units, size=(resamples, units))
    # Counted with one bincount (each resample its own block of ids): ~10x faster than rng.multinomial.
    offsets = np.arange(resamples)[:, None] * units
    return np.bincount((drawn + offsets).ravel(), minlength=resamples * units).reshape(resamples, units).astype(float)


def fleiss_kappa(counts: Sequence[Sequence[int]], confidence: float = 0.95, *, resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Fleiss' kappa (1971) from a rows × categories table: counts[i][j] raters put row i in category j;
    every row has the same number m ≥ 2 of ratings.

    P_i = (Σ_j n_ij² − m) / (m(m − 1)), P̄ its mean, p_j = Σ_i n_ij / (N m), P̄_e = Σ_j p_j²,
    kappa = (P̄ − P̄_e) / (1 − P̄_e).
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return Estimate(None, n=0, reason="no rows")
    n_rows = table.shape[0]
    per_row = table.sum(axis=1)
    m = float(per_row[0])
    if np.any(per_row != m):
        raise ValueError("every row needs the same number of ratings for Fleiss' kappa")
    if m < 2:
        return Estimate(None, n=n_rows, reason="each row needs at least two ratings")
    if n_rows < 2:
        return Estimate(None, n=n_rows, reason="one row only")

    agree = ((table**2).sum(axis=1) - m) / (m * (m - 1))

    def kappa_of(weights: np.ndarray) -> np.ndarray:
        """Kappa for each weighting of the rows (one weighting per line)."""
        total = weights.sum(axis=1)
        p_bar = (weights @ agree) / total
        p_j = (weights @ table) / (total * m)[:, None]
        p_e = (p_j**2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p_e < 1 - 1e-12, (p_bar - p_e) / (1 - p_e), np.nan)

    value = float(kappa_of(np.ones((1, n_rows)))[0])
    if not math.isfinite(value):
        return Estimate(None, n=n_rows, reason="every rating is the same, so agreement beyond chance cannot be "
                                               "measured")
    return _percentile_interval(kappa_of(_resample_weights(n_rows, resamples, seed)), confidence, n_rows, value)


def category_counts(ratings: Sequence[Sequence[Hashable]], categories: Sequence[Hashable] | None = None
                    ) -> list[list[int]]:
    """Each row's ratings (any number) -> the rows × categories count table Fleiss' kappa reads."""
    cats = list(categories) if categories is not None else sorted({r for row in ratings for r in row}, key=str)
    out = []
    for row in ratings:
        c = Counter(row)
        out.append([c.get(cat, 0) for cat in cats])
    return out


# --- Krippendorff's alpha (nominal) --------------------------------------------------------------------


def krippendorff_alpha(units: Sequence[Sequence[Hashable | None]], confidence: float = 0.95, *,
                       resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Krippendorff's alpha for nominal data. `units` holds one list per unit (row): the value each rater
    gave it, None where a rater gave none. Units with fewer than two values cannot be paired and are left out.

    From the coincidence matrix o_ck = Σ_u (number of c–k pairs of values in u) / (m_u − 1), with n_c its
    margins and n = Σ n_c: alpha = 1 − (n − 1)·(n − Σ_c o_cc) / (n² − Σ_c n_c²) (Krippendorff 2011).
    """
    rows = [[v for v in unit if v is not None] for unit in units]
    rows = [r for r in rows if len(r) >= 2]
    if not rows:
        return Estimate(None, n=0, reason="no row has two or more ratings")
    values = sorted({v for r in rows for v in r}, key=str)
    index = {v: i for i, v in enumerate(values)}
    k = len(values)
    # Each unit's own coincidences, flattened: the matrix of the data (or a resample) is a weighted sum.
    per_unit = np.zeros((len(rows), k * k))
    for u, r in enumerate(rows):
        c = np.bincount([index[v] for v in r], minlength=k).astype(float)
        per_unit[u] = ((np.outer(c, c) - np.diag(c)) / (len(r) - 1)).ravel()

    def alpha_of(weights: np.ndarray) -> np.ndarray:
        o = (weights @ per_unit).reshape(-1, k, k)
        n_c = o.sum(axis=2)
        n = n_c.sum(axis=1)
        observed = n - np.trace(o, axis1=1, axis2=2)
        expected = n**2 - (n_c**2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(expected > 1e-12, 1 - (n - 1) * observed / expected, np.nan)

    value = float(alpha_of(np.ones((1, len(rows))))[0])
    if not math.isfinite(value):
        return Estimate(None, n=len(rows), reason="every rating is the same, so agreement beyond chance cannot "
                                                  "be measured")
    if len(rows) < 2:
        return Estimate(value, n=1, reason="one row only: no interval")
    return _percentile_interval(alpha_of(_resample_weights(len(rows), resamples, seed)), confidence, len(rows),
                                value)


# --- rank correlations ---------------------------------------------------------------------------------


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties given the mean of the ranks they span."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    out = np.empty(len(x))
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        out[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return out


def _pair_check(x: Sequence[float], y: Sequence[float]) -> Estimate | None:
    if len(x) != len(y):
        raise ValueError(f"need as many x as y values, got {len(x)} and {len(y)}")
    n = len(x)
    if n < 2:
        return Estimate(None, n=n, reason="no rows" if n == 0 else "one row only")
    if len(set(x)) == 1 or len(set(y)) == 1:
        which = "scores" if len(set(x)) == 1 else "ratings"
        return Estimate(None, n=n, reason=f"all {which} are the same, so there is no order to compare")
    return None


def _fisher(value: float, se: float | None, n: int, confidence: float, need: int) -> Estimate:
    if se is None:
        return Estimate(value, n=n, reason=f"an interval needs at least {need} rows")
    if abs(value) >= 1 - 1e-12:
        return Estimate(value, n=n, reason=PERFECT)
    z, zc = math.atanh(value), _z(confidence)
    return Estimate(value, math.tanh(z - zc * se), math.tanh(z + zc * se), n)


def spearman(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Spearman's rho (Pearson's correlation of the average ranks), Fisher-z interval (Bonett & Wright 2000)."""
    bad = _pair_check(x, y)
    if bad is not None:
        return bad
    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    rho = float(_clip((rx @ ry) / math.sqrt((rx @ rx) * (ry @ ry))))
    n = len(x)
    return _fisher(rho, math.sqrt((1 + rho * rho / 2) / (n - 3)) if n > 3 else None, n, confidence, 4)


def kendall_tau_b(x: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> Estimate:
    """Kendall's tau-b = (concordant − discordant) / √((pairs untied in x)·(pairs untied in y)), Fisher-z
    interval (Fieller, Hartley & Pearson 1957)."""
    bad = _pair_check(x, y)
    if bad is not None:
        return bad
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(xs)
    s = untied_x = untied_y = 0.0
    for i in range(n - 1):  # O(n²) time, O(n) memory: reviewed rows number in the hundreds
        dx, dy = np.sign(xs[i + 1:] - xs[i]), np.sign(ys[i + 1:] - ys[i])
        s += float(dx @ dy)
        untied_x += float(np.abs(dx).sum())
        untied_y += float(np.abs(dy).sum())
    tau = float(_clip(s / math.sqrt(untied_x * untied_y)))
    return _fisher(tau, math.sqrt(0.437 / (n - 4)) if n > 4 else None, n, confidence, 5)

"""The agreement statistics (studio.review.agreement), each checked three ways: against a small table worked
out by hand in the comment beside it, against a library that computes it (scikit-learn, SciPy, statsmodels,
krippendorff), and where one exists against a published example; then the degenerate inputs, which give
None with a reason instead of NaN or an exception."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from studio.review.agreement import (
    PERFECT,
    Estimate,
    category_counts,
    cohen_kappa,
    fleiss_kappa,
    kendall_tau_b,
    krippendorff_alpha,
    ranks,
    spearman,
    wilson,
)

Z95 = 1.959964

# --- proportions --------------------------------------------------------------------------------------


def test_wilson_is_the_gates_interval_and_statsmodels() -> None:
    from statsmodels.stats.proportion import proportion_confint

    e = wilson(17, 20)
    assert (e.value, e.n) == (0.85, 20)
    low, high = proportion_confint(17, 20, alpha=0.05, method="wilson")
    assert e.low == pytest.approx(low, abs=1e-9) and e.high == pytest.approx(high, abs=1e-9)
    # (p + z²/2n ± z√(p(1−p)/n + z²/4n²)) / (1 + z²/n) with p = 0.85, n = 20:
    # centre (0.85 + 0.09604) / 1.19208 = 0.79361, half 1.96·√(0.006375 + 0.0024010) / 1.19208 = 0.15399.
    assert (round(e.low, 4), round(e.high, 4)) == (0.6396, 0.9476)
    assert wilson(0, 0) == Estimate(None, n=0, reason="no rows")


# --- Cohen's kappa ------------------------------------------------------------------------------------

# Two raters, 50 rows (the worked example of Wikipedia's "Cohen's kappa" article):
#              B yes  B no
#     A yes      20     5      A: yes 25, no 25
#     A no       10    15      B: yes 30, no 20
COHEN_A = ["yes"] * 25 + ["no"] * 25
COHEN_B = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15


def test_cohen_kappa_by_hand() -> None:
    # p_o = (20 + 15) / 50 = 0.7; p_e = 0.5·0.6 + 0.5·0.4 = 0.5; kappa = (0.7 − 0.5) / (1 − 0.5) = 0.4.
    # Fleiss, Cohen & Everitt (1969) variance, p = [[.4, .1], [.2, .3]], rows (A) .5/.5, columns (B) .6/.4:
    #   a = Σ p_ii (1 − (p_i. + p_.i)(1 − κ))² = .4(1 − 1.1·.6)² + .3(1 − .9·.6)² = .04624 + .06348 = .10972
    #   b = (1 − κ)² Σ_{i≠j} p_ij (p_.i + p_j.)² = .36·(.1·1.1² + .2·.9²) = .36·.283 = .10188
    #   c = (κ − p_e(1 − κ))² = (.4 − .3)² = .01
    #   var = (a + b − c) / (n (1 − p_e)²) = .2016 / 12.5 = .016128, SE = .126996
    # 95%: 0.4 ± 1.959964·0.126996 = 0.4 ± 0.248908.
    e = cohen_kappa(COHEN_A, COHEN_B)
    assert e.value == pytest.approx(0.4) and e.n == 50
    assert e.low == pytest.approx(0.4 - Z95 * math.sqrt(0.016128), abs=1e-6)
    assert e.high == pytest.approx(0.4 + Z95 * math.sqrt(0.016128), abs=1e-6)
    assert (round(e.low, 4), round(e.high, 4)) == (0.1511, 0.6489)


def test_cohen_kappa_matches_sklearn_and_statsmodels() -> None:
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa

    rng = np.random.default_rng(7)
    for n, k, keep in [(50, 2, 0.7), (80, 3, 0.6), (200, 4, 0.5), (30, 2, 0.9)]:
        a = rng.integers(0, k, n)
        b = np.where(rng.random(n) < keep, a, rng.integers(0, k, n))
        mine = cohen_kappa(list(a), list(b))
        assert mine.value == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
        table = np.zeros((k, k))
        np.add.at(table, (a, b), 1)
        ref = cohens_kappa(table)
        # The same Fleiss-Cohen-Everitt interval; statsmodels does not clip it to kappa's range [-1, 1].
        assert mine.low == pytest.approx(max(-1.0, ref.kappa_low), abs=1e-9)
        assert mine.high == pytest.approx(min(1.0, ref.kappa_upp), abs=1e-9)
    # The labels may be any hashable values, in any order.
    assert cohen_kappa(["keep", "reject", "keep"], ["keep", "reject", "reject"]).value == pytest.approx(
        cohen_kappa_score(["keep", "reject", "keep"], ["keep", "reject", "reject"]))


def test_cohen_kappa_degenerate_input_gives_a_reason() -> None:
    assert cohen_kappa([], []).reason == "no rows"
    assert cohen_kappa(["a"], ["a"]).reason == "one row only"
    same = cohen_kappa(["keep"] * 12, ["keep"] * 12)
    assert same.value is None and "same single answer" in same.reason
    with warnings.catch_warnings():  # scikit-learn answers NaN here, with a warning
        warnings.simplefilter("ignore")
        from sklearn.metrics import cohen_kappa_score

        assert math.isnan(cohen_kappa_score(["keep"] * 12, ["keep"] * 12))
    # One rater always says the same, the other does not: defined, and exactly chance (0), as in sklearn.
    assert cohen_kappa(["keep"] * 4, ["keep", "reject", "keep", "reject"]).value == 0.0
    # Perfect agreement: the interval would have no width (claiming certainty from 4 rows), so there is none.
    perfect = cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"])
    assert (perfect.value, perfect.low, perfect.high, perfect.reason) == (1.0, None, None, PERFECT)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


# --- Fleiss' kappa ------------------------------------------------------------------------------------

# Fleiss (1971) as in Wikipedia's "Fleiss' kappa" article: 14 raters, 10 subjects, 5 categories, kappa 0.210.
FLEISS_1971 = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
               [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]


def test_fleiss_kappa_by_hand() -> None:
    # 4 rows, 3 raters each, 2 categories: [3,0] [0,3] [2,1] [1,2].
    # P_i = (Σ n_ij² − 3) / (3·2): 1, 1, (4 + 1 − 3)/6 = 1/3, 1/3; P̄ = (8/3)/4 = 2/3.
    # p_j = 6/12, 6/12; P̄_e = 0.25 + 0.25 = 0.5; kappa = (2/3 − 1/2) / (1 − 1/2) = 1/3.
    e = fleiss_kappa([[3, 0], [0, 3], [2, 1], [1, 2]])
    assert e.value == pytest.approx(1 / 3) and e.n == 4


def test_fleiss_kappa_published_example_and_statsmodels() -> None:
    from statsmodels.stats.inter_rater import aggregate_raters
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    e = fleiss_kappa(FLEISS_1971)
    # P̄ = 0.378, P̄_e = 0.213 (Wikipedia), kappa = (0.378 − 0.213) / (1 − 0.213) = 0.210.
    assert round(e.value, 3) == 0.210 and e.value == pytest.approx(sm_fleiss(np.array(FLEISS_1971)), abs=1e-12)
    assert e.low < e.value < e.high
    rng = np.random.default_rng(3)
    for rows, raters, cats in [(20, 3, 2), (40, 5, 3), (15, 2, 4)]:
        truth = rng.integers(0, cats, rows)
        ratings = np.where(rng.random((rows, raters)) < 0.7, truth[:, None], rng.integers(0, cats, (rows, raters)))
        table, _ = aggregate_raters(ratings, n_cat=cats)
        assert category_counts(ratings.tolist(), list(range(cats))) == table.tolist()
        assert fleiss_kappa(table).value == pytest.approx(sm_fleiss(table), abs=1e-12)


def test_fleiss_interval_is_a_seeded_bootstrap() -> None:
    first, again = fleiss_kappa(FLEISS_1971), fleiss_kappa(FLEISS_1971)
    assert (first.low, first.high) == (again.low, again.high)  # the same ratings, the same interval
    other = fleiss_kappa(FLEISS_1971, seed=1)
    assert (other.low, other.high) != (first.low, first.high)
    assert fleiss_kappa(FLEISS_1971, 0.5).high - fleiss_kappa(FLEISS_1971, 0.5).low < first.high - first.low


def test_fleiss_kappa_degenerate_input_gives_a_reason() -> None:
    assert fleiss_kappa([]).reason == "no rows"
    assert fleiss_kappa([[2, 0]]).reason == "one row only"
    assert fleiss_kappa([[1, 0], [0, 1]]).reason == "each row needs at least two ratings"
    perfect = fleiss_kappa([[3, 0], [0, 3], [3, 0]])
    assert (perfect.value, perfect.low, perfect.reason) == (1.0, None, PERFECT)
    same = fleiss_kappa([[3, 0], [3, 0], [3, 0]])
    assert same.value is None and "every rating is the same" in same.reason
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [2, 1]])


# --- Krippendorff's alpha -----------------------------------------------------------------------------

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the example with missing data:
# 4 observers, 12 units; nominal alpha = 0.743.
_ = None
KRIPPENDORFF_2011 = [[1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
                     [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
                     [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
                     [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _]]


def _units(by_observer: list[list]) -> list[list]:
    return [list(unit) for unit in zip(*by_observer, strict=True)]


def _library_alpha(by_observer: list[list]) -> float:
    import krippendorff

    data = np.array([[np.nan if v is None else v for v in row] for row in by_observer], dtype=float)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def test_krippendorff_alpha_by_hand() -> None:
    # Units (a,a) (a,b) (b,b) (a,–): the last has one value and cannot be paired.
    # Coincidences: o_aa = 2·1/(2−1) = 2, o_ab = o_ba = 1, o_bb = 2; n_a = n_b = 3, n = 6.
    # alpha = 1 − (n − 1)·(n − Σ o_cc) / (n² − Σ n_c²) = 1 − 5·2 / (36 − 18) = 1 − 10/18 = 4/9.
    by_observer = [["a", "a", "b", "a"], ["a", "b", "b", None]]
    e = krippendorff_alpha(_units(by_observer))
    assert e.value == pytest.approx(4 / 9) and e.n == 3
    assert e.value == pytest.approx(_library_alpha([[0, 0, 1, 0], [0, 1, 1, None]]))


def test_krippendorff_alpha_published_example_and_library() -> None:
    e = krippendorff_alpha(_units(KRIPPENDORFF_2011))
    assert round(e.value, 3) == 0.743 and e.n == 11  # unit 12 has a single value
    assert e.value == pytest.approx(_library_alpha(KRIPPENDORFF_2011), abs=1e-12)
    assert e.low < e.value <= e.high
    rng = np.random.default_rng(5)
    for units, observers, cats, missing in [(30, 3, 2, 0.2), (50, 4, 3, 0.3), (25, 2, 2, 0.0)]:
        truth = rng.integers(0, cats, units)
        values = np.where(rng.random((observers, units)) < 0.75, truth, rng.integers(0, cats, (observers, units)))
        data = [[None if rng.random() < missing else int(v) for v in row] for row in values]
        assert krippendorff_alpha(_units(data)).value == pytest.approx(_library_alpha(data), abs=1e-12)


def test_krippendorff_alpha_degenerate_input_gives_a_reason() -> None:
    assert krippendorff_alpha([]).reason == "no row has two or more ratings"
    assert krippendorff_alpha([["a", None], [None, "b"]]).reason == "no row has two or more ratings"
    same = krippendorff_alpha([["a", "a"], ["a", "a", None]])
    assert same.value is None and "every rating is the same" in same.reason
    import krippendorff

    with pytest.raises(ValueError, match="more than one value"):  # the library refuses this outright
        krippendorff.alpha(reliability_data=np.array([[1.0, 1.0], [1.0, 1.0]]), level_of_measurement="nominal")
    perfect = krippendorff_alpha([["a", "a"], ["b", "b", None]])
    assert (perfect.value, perfect.low, perfect.reason) == (1.0, None, PERFECT)
    single = krippendorff_alpha([["a", "b"]])
    assert single.value is not None and single.low is None and "no interval" in single.reason


# --- rank correlations --------------------------------------------------------------------------------


def test_ranks_average_ties() -> None:
    assert ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]


def test_spearman_by_hand() -> None:
    # x 1..5, y 2 1 4 3 5: d = −1 1 −1 1 0, Σd² = 4, rho = 1 − 6·4 / (5·24) = 0.8.
    # Fisher z (Bonett & Wright): SE = √((1 + 0.8²/2) / (5 − 3)) = √0.66 = 0.812404;
    # tanh(atanh 0.8 ± 1.959964·0.812404) = tanh(1.098612 ± 1.592283) = −0.4571 … 0.9908.
    e = spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert e.value == pytest.approx(0.8)
    assert (round(e.low, 4), round(e.high, 4)) == (-0.4571, 0.9908)


def test_kendall_by_hand() -> None:
    # x 1..5, y 2 1 4 3 5: of 10 pairs, (1,2) and (3,4) are discordant, 8 concordant: tau = 6/10 = 0.6.
    assert kendall_tau_b([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]).value == pytest.approx(0.6)
    # With ties, x 1 2 2 3 and y 0 0 1 1: concordant (1,3) (1,4) (2,4) = 3, discordant 0; of 6 pairs 1 is
    # tied in x and 2 in y: tau-b = 3 / √((6 − 1)(6 − 2)) = 3/√20 = 0.670820.
    e = kendall_tau_b([1, 2, 2, 3], [0, 0, 1, 1])
    assert e.value == pytest.approx(3 / math.sqrt(20)) and e.low is None and "at least 5 rows" in e.reason
    # Fieller et al.: SE = √(0.437 / (n − 4)).
    six = kendall_tau_b([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5])
    se = math.sqrt(0.437 / 2)
    assert six.low == pytest.approx(math.tanh(math.atanh(six.value) - Z95 * se), abs=1e-6)


def test_rank_correlations_match_scipy() -> None:
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(11)
    for n in (8, 30, 120):
        x = rng.integers(1, 6, n).astype(float) + rng.integers(0, 3, n) / 3  # judge-like means, many ties
        y = (x + rng.normal(0, 1.2, n) > 3).astype(float)  # a keep / reject verdict
        z = np.clip(np.round(x + rng.normal(0, 1, n)), 1, 5)  # a 1-5 rating
        for other in (y, z):
            assert spearman(x, other).value == pytest.approx(spearmanr(x, other).statistic, abs=1e-12)
            assert kendall_tau_b(x, other).value == pytest.approx(kendalltau(x, other).statistic, abs=1e-12)


def test_rank_correlations_degenerate_input_gives_a_reason() -> None:
    for f in (spearman, kendall_tau_b):
        assert f([], []).reason == "no rows"
        assert f([3.0], [1.0]).reason == "one row only"
        constant = f([3.0, 3.0, 3.0, 3.0], [1, 0, 1, 0])
        assert constant.value is None and "all scores are the same" in constant.reason
        assert "all ratings are the same" in f([1, 2, 3, 4], [1, 1, 1, 1]).reason
        perfect = f([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12])
        assert (perfect.value, perfect.low, perfect.high, perfect.reason) == (1.0, None, None, PERFECT)
    assert spearman([1, 2, 3], [1, 3, 2]).low is None  # a value, but too few rows for an interval

"""Evaluation pieces: reference metrics, blind A/B votes and the swapped-order pairwise judge."""

from __future__ import annotations

import subprocess
import sys

import pytest

from studio.errors import QualityError
from studio.evaluation import metrics, pairwise, votes
from studio.review.gate import wilson_interval

# --- metrics -------------------------------------------------------------------------------------------

def test_identical_strings_score_perfectly() -> None:
    refs = ["the quick brown fox jumps over the lazy dog", "a stitch in time saves nine"]
    assert metrics.rouge_l(refs, refs) == pytest.approx(1.0)
    assert metrics.bleu(refs, refs) == pytest.approx(100.0)
    assert metrics.exact_match(refs, refs) == 1.0


def test_disjoint_strings_score_zero() -> None:
    preds, refs = ["alpha beta gamma delta"], ["one two three four"]
    assert metrics.rouge_l(preds, refs) == 0.0
    assert metrics.bleu(preds, refs) == pytest.approx(0.0)
    assert metrics.exact_match(preds, refs) == 0.0


def test_rouge_l_hand_checked_and_matches_rouge_score() -> None:
    from rouge_score import rouge_scorer

    # LCS of "the cat sat on the mat" / "the cat is on the mat" is "the cat on the mat" (5 of 6 each side).
    pred, ref = "the cat sat on the mat", "the cat is on the mat"
    assert metrics.rouge_l([pred], [ref]) == pytest.approx(5 / 6)
    # Unequal lengths make P != R, so a swapped argument order would show up here.
    preds = ["the cat sat on the mat", "police killed the gunman"]
    refs = ["the cat is on the mat today", "the gunman was shot down by police"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs, strict=True)) / 2
    assert metrics.rouge_l(preds, refs) == pytest.approx(expected)
    rows = metrics.per_example(preds, refs)
    assert rows[0]["rouge_l"] == pytest.approx(scorer.score(refs[0], preds[0])["rougeL"].fmeasure)


def test_rouge_l_uses_stemmer() -> None:
    assert metrics.rouge_l(["cats running"], ["cat runs"]) == pytest.approx(1.0)


@pytest.mark.parametrize(("pred", "ref", "same"), [
    ("The Cat.", "cat", True),
    ("  an   apple ", "Apple!", True),
    ("Paris, France", "paris france", True),
    ("the theory", "theory", True),
    ("theory", "ory", False),
    ("cat", "dog", False),
])
def test_exact_match_normalisation(pred: str, ref: str, same: bool) -> None:
    assert metrics.exact_match([pred], [ref]) == (1.0 if same else 0.0)


def test_exact_match_is_a_share() -> None:
    assert metrics.exact_match(["a", "b", "c", "x"], ["a", "b", "c", "d"]) == 0.75


def test_per_example_values() -> None:
    rows = metrics.per_example(["the cat", "dog"], ["The cat.", "a bird"])
    assert rows[0]["exact"] == 1.0 and rows[1]["exact"] == 0.0
    assert rows[1]["rouge_l"] == 0.0
    assert 0.0 <= rows[0]["bleu"] <= 100.0 and set(rows[0]) == {"rouge_l", "bleu", "exact"}


def test_compare_deltas_and_sorting() -> None:
    refs = ["the sky is blue", "water is wet", "fire is hot"]
    base = ["the sky is blue", "nothing here", "fire is cold"]
    tuned = ["the sky is blue", "water is wet", "fire is warm"]
    table = metrics.compare(base, tuned, refs)
    by = {r.metric: r for r in table.rows}
    assert list(by) == ["rouge_l", "bleu", "exact"]
    assert by["exact"].base == pytest.approx(1 / 3) and by["exact"].tuned == pytest.approx(2 / 3)
    assert by["exact"].delta == pytest.approx(1 / 3)
    for r in table.rows:
        assert r.delta == pytest.approx(r.tuned - r.base)
    assert by["rouge_l"].delta > 0
    # Example 1 changed most (0 -> 1); examples 0 and 2 did not change (cold and warm both miss one word).
    assert [e.index for e in table.examples] == [1, 0, 2]  # equal changes keep input order
    assert table.examples[0].change == pytest.approx(1.0)
    changes = [abs(e.change) for e in table.examples]
    assert changes == sorted(changes, reverse=True)
    d = table.to_dict()
    assert d["rows"][2] == {"metric": "exact", "base": by["exact"].base, "tuned": by["exact"].tuned,
                            "delta": by["exact"].delta}
    assert d["examples"][0]["tuned_pred"] == "water is wet"
    md = table.to_markdown()
    assert "| ROUGE-L |" in md and "| Exact match | 0.333 | 0.667 | +0.333 |" in md


def test_compare_sorts_negative_changes_by_size() -> None:
    refs = ["one two three four", "five six seven eight"]
    base = ["one two three four", "five six seven eight"]
    tuned = ["one two three four", "nine"]
    table = metrics.compare(base, tuned, refs)
    assert table.examples[0].index == 1 and table.examples[0].change == pytest.approx(-1.0)


@pytest.mark.parametrize("fn", [metrics.rouge_l, metrics.bleu, metrics.exact_match, metrics.per_example])
def test_bad_input_refused(fn) -> None:
    with pytest.raises(QualityError, match="nothing to score"):
        fn([], [])
    with pytest.raises(QualityError, match="2 predictions and 1 references"):
        fn(["a", "b"], ["a"])


def test_compare_refuses_mismatch() -> None:
    with pytest.raises(QualityError):
        metrics.compare(["a"], ["a", "b"], ["a"])
    with pytest.raises(QualityError):
        metrics.compare([], [], [])


def test_import_does_not_load_heavy_libraries() -> None:
    code = ("import sys; import studio.evaluation.metrics, studio.evaluation.votes, studio.evaluation.pairwise; "
            "heavy = [m for m in ('sacrebleu', 'rouge_score', 'numpy') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- votes ---------------------------------------------------------------------------------------------

def test_tally_values_and_wilson() -> None:
    s = votes.tally(["tuned"] * 7 + ["base"] * 3 + ["tie"] * 2)
    assert (s.tuned_wins, s.base_wins, s.ties, s.n) == (7, 3, 2, 12)
    assert s.win_rate == pytest.approx(0.7)
    assert (s.low, s.high) == pytest.approx(wilson_interval(7, 10))
    assert s.low == pytest.approx(0.3968, abs=1e-3) and s.high == pytest.approx(0.8922, abs=1e-3)
    assert s.tie_rate == pytest.approx(2 / 12)
    assert "7 of 10" in s.message and "Not enough evidence" in s.message


def test_tally_clear_winners() -> None:
    assert "fine-tuned model is better" in votes.tally(["tuned"] * 30).message
    s = votes.tally(["base"] * 30 + ["tuned"])
    assert s.high < 0.5 and "base model is better" in s.message


def test_tally_empty_and_all_ties() -> None:
    s = votes.tally([])
    assert (s.n, s.win_rate, s.low, s.high, s.tie_rate) == (0, 0.5, 0.0, 1.0, 0.0)
    s = votes.tally(["tie", "tie"])
    assert s.tie_rate == 1.0 and "ties" in s.message


def test_tally_refuses_unknown_vote() -> None:
    with pytest.raises(QualityError, match="'A'"):
        votes.tally(["tuned", "A"])


def test_assign_sides_reproducible_and_balanced() -> None:
    prompts = [f"prompt number {i}" for i in range(1000)]
    first = [votes.assign_sides(42, p) for p in prompts]
    assert first == [votes.assign_sides(42, p) for p in prompts]
    assert set(first) == {"base", "tuned"}
    assert 0.45 <= first.count("tuned") / 1000 <= 0.55
    # A different seed reshuffles the sides.
    other = [votes.assign_sides(43, p) for p in prompts]
    assert other != first


# --- pairwise ------------------------------------------------------------------------------------------

def test_judge_messages() -> None:
    msgs = pairwise.judge_messages("summarise", "Long text", "base answer", "tuned answer")
    assert [m["role"] for m in msgs] == ["system", "user"]
    text = "\n".join(m["content"] for m in msgs)
    assert "[seed-studio pairwise judge v1]" in text
    assert text.index("base answer") < text.index("tuned answer")
    assert "tie" in text and "summarise" in text and "Long text" in text


@pytest.mark.parametrize(("reply", "expected"), [
    ("1", "1"),
    ("2", "2"),
    ("**2**", "2"),
    ("Answer 1", "1"),
    ("Answer 2 is better.", "2"),
    ("Answer 1 is better than answer 2.", "1"),
    ('{"winner": 2}', "2"),
    ('```json\n{"winner": "1"}\n```', "1"),
    ('{"winner": "tie"}', "tie"),
    ("tie", "tie"),
    ("Tie.", "tie"),
    ("They are equal.", "tie"),
    ("Both are equally good", "tie"),
    ("", None),
    ("I cannot decide", None),
    ("3", None),
    ("1.5", None),
    ("1 or 2", None),
])
def test_parse_preference(reply: str, expected: str | None) -> None:
    assert pairwise.parse_preference(reply) == expected


@pytest.mark.parametrize(("first", "swapped", "expected"), [
    ("2", "1", "tuned"),   # tuned shown second, then first: both pick tuned
    ("1", "2", "base"),    # both pick base
    ("1", "1", "tie"),     # always the first position: disagreement
    ("2", "2", "tie"),     # always the second position: disagreement
    ("tie", "tie", "tie"),
    ("2", "tie", "tie"),
    ("tie", "2", "tie"),
    (None, "1", None),
    ("1", None, None),
])
def test_combine_truth_table(first, swapped, expected) -> None:
    assert pairwise.combine(first, swapped) == expected


def test_position_biased_judge_gives_only_ties() -> None:
    def biased_judge(messages: list[dict[str, str]]) -> str:
        return "Answer 1"

    outcomes = []
    for i in range(20):
        prompt, base, tuned = f"p{i}", f"base {i}", f"tuned {i}"
        first = pairwise.parse_preference(biased_judge(pairwise.judge_messages("t", prompt, base, tuned)))
        swapped = pairwise.parse_preference(biased_judge(pairwise.judge_messages("t", prompt, tuned, base)))
        outcomes.append(pairwise.combine(first, swapped))
    assert outcomes == ["tie"] * 20
    s = pairwise.win_rate(outcomes)
    assert s.ties == 20 and s.tuned_wins == 0 and s.base_wins == 0


def test_content_judge_win_rate() -> None:
    def judge(messages: list[dict[str, str]]) -> str:
        user = messages[1]["content"]
        # Prefers whichever slot holds the tuned answer.
        return "2" if user.index("tuned") > user.index("base") else "1"

    outcomes = []
    for i in range(10):
        first = pairwise.parse_preference(judge(pairwise.judge_messages("t", "p", f"base {i}", f"tuned {i}")))
        swapped = pairwise.parse_preference(judge(pairwise.judge_messages("t", "p", f"tuned {i}", f"base {i}")))
        outcomes.append(pairwise.combine(first, swapped))
    s = pairwise.win_rate([*outcomes, None])
    assert s.tuned_wins == 10 and s.n == 10 and s.win_rate == 1.0
    assert (s.low, s.high) == pytest.approx(wilson_interval(10, 10))

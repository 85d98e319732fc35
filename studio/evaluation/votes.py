"""Blind A/B vote bookkeeping: which model shows as 'A', and what the votes add up to."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from studio.errors import QualityError
from studio.review.gate import wilson_interval

Vote = Literal["base", "tuned", "tie"]
VOTES = ("base", "tuned", "tie")


def assign_sides(seed: int | str, prompt: str) -> Literal["base", "tuned"]:
    """The model shown as 'A' for this prompt. Hashing (not random) so a reload shows the same sides."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return "tuned" if digest[0] & 1 else "base"


@dataclass
class VoteSummary:
    tuned_wins: int
    base_wins: int
    ties: int
    n: int
    win_rate: float
    """Tuned wins over decisive (non-tie) votes; 0.5 when there are none."""
    low: float
    high: float
    tie_rate: float
    message: str


def tally(votes: list[str], confidence: float = 0.95) -> VoteSummary:
    """Count votes; the Wilson interval is over decisive votes only, since a tie says nothing about who wins."""
    bad = [v for v in votes if v not in VOTES]
    if bad:
        raise QualityError(f"A vote must be 'base', 'tuned' or 'tie', got {bad[0]!r}.")
    counts = Counter(votes)
    tuned, base, ties = counts["tuned"], counts["base"], counts["tie"]
    n, decisive = len(votes), tuned + base
    low, high = wilson_interval(tuned, decisive, confidence)
    rate = tuned / decisive if decisive else 0.5
    return VoteSummary(tuned, base, ties, n, rate, low, high, ties / n if n else 0.0,
                       _message(tuned, base, ties, rate, low, high))


def _message(tuned: int, base: int, ties: int, rate: float, low: float, high: float) -> str:
    decisive = tuned + base
    if decisive == 0:
        return "No decisive votes yet." if ties == 0 else f"All {ties} votes were ties: no difference seen yet."
    head = (f"The fine-tuned model won {tuned} of {decisive} decisive votes ({rate:.0%}; likely between "
            f"{low:.0%} and {high:.0%}), with {ties} ties.")
    if low > 0.5:
        return head + " The fine-tuned model is better."
    if high < 0.5:
        return head + " The base model is better."
    return head + " Not enough evidence yet to say which is better."

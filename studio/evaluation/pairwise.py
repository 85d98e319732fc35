"""LLM-judge pairwise win rate, asking twice with the answers swapped to cancel position bias.

The first call shows (base, tuned) as answers (1, 2); the swapped call shows (tuned, base) as (1, 2).
`combine` names a winner only when both orders agree on the same model. When the orders disagree the
judge was following position rather than content, so it counts as a tie; both saying tie is a tie too.
An unparseable reply in either order gives None (no outcome), so it is left out rather than guessed.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from studio.evaluation.votes import VoteSummary, tally

MARKER = "[seed-studio pairwise judge v1]"
Preference = Literal["1", "2", "tie"]

_SYSTEM = (f"{MARKER}\nYou compare two answers to the same prompt for a task. Judge which answer completes "
           "the task better: correctness first, then following the instructions, then clarity. Ignore the "
           "order the answers appear in and their length alone. Reply with exactly one of: 1, 2, tie.")


def judge_messages(task: str, prompt: str, answer_1: str, answer_2: str) -> list[dict[str, str]]:
    """Chat messages asking the judge which answer is better: '1', '2' or 'tie'."""
    user = (f"Task: {task}\n\nPrompt:\n{prompt}\n\nAnswer 1:\n{answer_1}\n\nAnswer 2:\n{answer_2}\n\n"
            "Which answer is better? Reply with 1, 2 or tie.")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


_TIE = re.compile(r"\b(tie|tied|equal|equally|same|neither|both)\b", re.I)
_NUM = re.compile(r"(?<![\d.])([12])(?![\d.])")


def parse_preference(text: str) -> Preference | None:
    """Read the judge's choice tolerantly: '2', '**1**', 'Answer 1', {"winner": 2}, 'tie'/'equal'."""
    if not isinstance(text, str) or not text.strip():
        return None
    stripped = text.strip().strip("`").strip()
    if stripped.startswith("json"):
        stripped = stripped[4:].strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("winner", "preference", "better", "choice", "answer"):
            if key in data:
                return parse_preference(str(data[key]))
        return None
    if isinstance(data, int | str) and not isinstance(data, bool):
        text = str(data)
    # "Answer N" is the clearest statement; fall back to a lone 1 or 2, then to tie words.
    better = set(re.findall(r"answer\s*([12])\s+is\s+(?:better|stronger|preferred|the winner)", text, re.I))
    if len(better) == 1:
        return better.pop()  # type: ignore[return-value]
    named = set(re.findall(r"answer\s*([12])\b", text, re.I))
    if len(named) == 1:
        return named.pop()  # type: ignore[return-value]
    nums = set(_NUM.findall(text))
    if len(nums) == 1 and not _TIE.search(text):
        return nums.pop()  # type: ignore[return-value]
    if _TIE.search(text):
        return "tie"
    return None


def combine(first_order: str | None, swapped_order: str | None) -> Literal["tuned", "base", "tie"] | None:
    """Merge the two orders: first shows (base, tuned) as (1, 2), swapped shows (tuned, base) as (1, 2)."""
    if first_order not in ("1", "2", "tie") or swapped_order not in ("1", "2", "tie"):
        return None
    first = {"1": "base", "2": "tuned", "tie": "tie"}[first_order]
    swapped = {"1": "tuned", "2": "base", "tie": "tie"}[swapped_order]
    if first == swapped:
        return first  # type: ignore[return-value]
    # Disagreement (including one tie and one win) is no reliable winner: count it as a tie.
    return "tie"


def win_rate(outcomes: list[str | None]) -> VoteSummary:
    """Summarise combined outcomes; None (unparseable judge replies) is left out."""
    return tally([o for o in outcomes if o is not None])

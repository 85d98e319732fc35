"""Blind A/B votes: base and fine-tuned answers shown as A and B, a person picks, the vote is stored resolved.

    pair = make_pair(sbs, run_id, prompt, base_model_ref=ref)   # both answers, same settings and seed
    show(pair.a_text, pair.b_text)                               # the person never sees which is which
    vote = record_vote(ws, pair, "B")                            # stored as the model behind B
    vote.reveal()                                                # "A was the base model, B the fine-tuned ..."
    vote_summary(ws, run_id)                                     # win rate with a Wilson interval

Which model is A comes from `votes.assign_sides(run_id, prompt)`: a hash, not a coin flip, so a reload
shows the same sides for a prompt, and across prompts both orders occur about equally often. The vote row
keeps the pick (A/B/tie), the model it meant (`choice`: base/tuned/tie), which model was A and both answers:
what the person saw can always be checked later.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from studio.errors import QualityError, TrainError
from studio.evaluation.votes import VoteSummary, assign_sides, tally
from studio.workspace import Workspace, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from studio.evaluation.sidebyside import SideBySide

PICKS = ("A", "B", "tie")
MODELS = ("base", "tuned")


@dataclass
class ABPair:
    """One prompt answered by both models, ready to show blind as A and B."""

    run_id: int
    prompt: str
    shown_a: str
    """'base' or 'tuned': the model shown as A."""
    a_text: str
    b_text: str
    base_answer: str
    tuned_answer: str
    base_model_ref: str
    settings: dict[str, Any] = field(default_factory=dict)

    def model_of(self, pick: str) -> str:
        """The model behind a pick: 'A' / 'B' / 'tie' -> 'base' / 'tuned' / 'tie'."""
        side = normalize_pick(pick)
        if side == "tie":
            return "tie"
        other = "tuned" if self.shown_a == "base" else "base"
        return self.shown_a if side == "A" else other

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VoteRecord:
    id: int
    run_id: int
    prompt: str
    pick: str
    """What the person clicked: 'A', 'B' or 'tie'."""
    choice: str
    """The model that pick meant: 'base', 'tuned' or 'tie'."""
    shown_a: str
    base_answer: str
    tuned_answer: str
    voter: str
    created_at: str
    base_model_ref: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def reveal(self) -> str:
        """What A and B were, and what the person preferred, in plain words (shown after the vote)."""
        tuned = f"the fine-tuned model (run {self.run_id})"
        names = {"tuned": tuned, "base": "the base model"}
        if self.shown_a not in names:  # a vote stored before A/B was recorded
            head = "Which model was shown as A was not recorded for this vote."
        else:
            shown_b = "base" if self.shown_a == "tuned" else "tuned"
            head = f"A was {names[self.shown_a]}, B {names[shown_b]}."
        if self.choice == "tie":
            return f"{head} You called it a tie."
        pick = f"{self.pick}: " if self.pick in ("A", "B") else ""
        return f"{head} You preferred {pick}{names.get(self.choice, self.choice)}."

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reveal": self.reveal()}


def normalize_pick(pick: str) -> str:
    """'a' / ' B ' / 'TIE' -> 'A' / 'B' / 'tie'; anything else is refused with a plain message."""
    text = str(pick or "").strip().lower()
    if text in ("a", "b"):
        return text.upper()
    if text == "tie":
        return "tie"
    raise QualityError(f"A vote is A, B or tie (got {pick!r}). Pick the answer you prefer, or tie when neither "
                       "is better.")


def make_pair(model: SideBySide, run_id: int, prompt: str, *, base_model_ref: str, max_new_tokens: int = 128,
              temperature: float = 0.0, seed: int = 0) -> ABPair:
    """Both answers to `prompt` with identical decoding settings and seed; A/B from `assign_sides`."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise QualityError("Type a prompt (or pick one from the test split) before asking for a blind pair.")
    settings = {"max_new_tokens": int(max_new_tokens), "temperature": float(temperature), "top_p": 1.0,
                "seed": int(seed)}
    base = model.generate(prompt, which="base", **settings)
    tuned = model.generate(prompt, which=int(run_id), **settings)
    shown_a = assign_sides(f"{run_id}", prompt)
    a_text, b_text = (base, tuned) if shown_a == "base" else (tuned, base)
    return ABPair(int(run_id), prompt, shown_a, a_text, b_text, base, tuned, base_model_ref, settings)


def record_vote(ws: Workspace, pair: ABPair, pick: str, *, voter: str = "") -> VoteRecord:
    """Store one vote; `choice` is the model behind the pick. Everything is checked before the write."""
    side = normalize_pick(pick)
    if pair.shown_a not in MODELS:
        raise QualityError(f"This pair does not say which model was shown as A (got {pair.shown_a!r}); ask for "
                           "a new pair.")
    if pair.shown_a != assign_sides(f"{pair.run_id}", pair.prompt):
        raise QualityError("This pair's A and B do not match the sides the studio shows for its prompt, so the "
                           "vote could not be trusted as blind. Ask for a new pair.")
    voter = " ".join(str(voter or "").split())
    if len(voter) > 80:
        raise QualityError(f"A voter name can be at most 80 characters; this one has {len(voter)}.")
    choice = pair.model_of(side)
    now = utc_now()
    with ws.write() as conn:
        _check_run(conn, pair.run_id)
        vote_id = int(conn.execute(
            "INSERT INTO vote(run_id, prompt, choice, voter, created_at, base_model_ref, shown_a, pick, base_answer, "
            "tuned_answer, settings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pair.run_id, pair.prompt, choice, voter, now, pair.base_model_ref, pair.shown_a, side,
             pair.base_answer, pair.tuned_answer, json.dumps(pair.settings))).lastrowid or 0)
    return VoteRecord(vote_id, pair.run_id, pair.prompt, side, choice, pair.shown_a, pair.base_answer,
                      pair.tuned_answer, voter, now, pair.base_model_ref, dict(pair.settings))


def list_votes(ws: Workspace, run_id: int) -> list[VoteRecord]:
    """The run's votes, oldest first."""
    with ws.read() as conn:
        _check_run(conn, run_id)
        rows = conn.execute("SELECT * FROM vote WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
    return [_record(r) for r in rows]


def vote_summary(ws: Workspace, run_id: int) -> VoteSummary:
    """`votes.tally` over the stored choices: tuned win rate over decisive votes, with its Wilson interval."""
    return tally([v.choice for v in list_votes(ws, run_id)])


def ab_prompts(ws: Workspace, run_id: int, split: str = "test") -> list[str]:
    """The user turns of the run's dataset version split (each once, in split order): prompts to vote on."""
    from studio.data.chat import to_prompt_completion
    from studio.data.versions import version_rows

    with ws.read() as conn:
        row = _check_run(conn, run_id)
    if row["dataset_version_id"] is None:
        raise TrainError(f"Run {run_id} has no dataset version any more (it was deleted), so there are no test "
                         "prompts to offer. Type a prompt instead.")
    prompts: list[str] = []
    for r in version_rows(ws, int(row["dataset_version_id"]), split):
        try:
            prompt = to_prompt_completion(r.format, r.data)["prompt"]
        except (KeyError, TypeError, ValueError):
            continue  # not a chat row (cannot happen in a frozen chat version): nothing to offer
        if prompt.strip() and prompt not in prompts:
            prompts.append(prompt)
    return prompts


def _check_run(conn: sqlite3.Connection, run_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT id, dataset_version_id FROM run WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise TrainError(f"There is no run #{run_id} in this workspace. `seed-studio runs list` lists them.")
    return row


def _record(r: sqlite3.Row) -> VoteRecord:
    try:
        settings = json.loads(r["settings"] or "{}")
    except ValueError:
        settings = {}
    return VoteRecord(r["id"], r["run_id"], r["prompt"], r["pick"], r["choice"], r["shown_a"], r["base_answer"],
                      r["tuned_answer"], r["voter"], r["created_at"], r["base_model_ref"],
                      settings if isinstance(settings, dict) else {})

"""Preference pairs from what people did: prompt / chosen / rejected, for DPO and ORPO.

    preview = build_pairs(ws, project_id, PreferenceConfig(machine_pairs=True))  # reads only
    pairs = preference_pairs(ws, version_id, "train")                             # frozen with a version

Where pairs come from (each pair names its source; `provenance` says which rows, votes and people):
- review: per prompt, every answer kept in review (accepted, or edited: the edited text) against every answer
  rejected in review. Rows are grouped by their prompt (the conversation up to the answer), so the several
  answers response-pair expansion writes for one instruction pair up, and so do expansions that happen to
  share a prompt. The combined verdict of studio.review.verdicts counts: a row any reviewer rejected is
  rejected.
- edit: a reviewer's edit against the row as the teacher wrote it (the edit wins). Only when the edit kept
  the prompt: an answer to another prompt says nothing about which answer to this one is better.
- vote: a blind A/B vote, the winner's answer against the loser's; ties give no pair.
- judge (machine pairs, only with machine_pairs on): per prompt, an answer the judge scored at least
  judge_margin points above another. A row a reviewer rejected is never chosen, and a pair people already
  made is not repeated.
Identical pairs (same prompt, chosen and rejected) are kept once, the human one first.

Only chat-family rows pair up (classification and NER rows have no free-text answer to prefer).

Held-out rule (freezing): a pair whose rows derive from a validation or test seed of the version, or whose
prompt is the prompt of a validation or test row, is dropped: preference training must not see the prompts
the model is checked on. The rest are split by prompt (all pairs of one prompt on the same side) into
train and validation (`validation_fraction` of the prompts, reproducibly from the version's rng_seed).
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from studio.data.chat import to_messages
from studio.data.formats import FORMATS, SeedFormat
from studio.errors import DatasetVersionError
from studio.workspace import Workspace

SOURCES = ("review", "edit", "vote", "judge")
HUMAN_SOURCES = ("review", "edit", "vote")
PAIR_SPLITS = ("train", "validation")
SOURCE_TITLES = {
    "review": "accepted vs rejected in review",
    "edit": "reviewer's edit vs the original",
    "vote": "blind A/B vote",
    "judge": "judge scores (machine pair)",
}
DROP_REASONS = {
    "held_out": "its prompt or its seeds belong to the validation or test split",
    "prompt_edited": "the reviewer's edit changed the prompt, so the original answers another question",
    "not_chat": "the row is not a chat row (classification and NER rows have no answer to prefer)",
    "same_answer": "chosen and rejected are the same text",
    "duplicate": "the same pair came from another source",
}


@dataclass
class PreferenceConfig:
    """Which pairs to build, and how many prompts to hold out. Part of a version's FreezeConfig."""

    sources: list[str] = field(default_factory=lambda: list(HUMAN_SOURCES))
    machine_pairs: bool = False
    """Also pair answers by judge score (marked source 'judge'); off by default: a person decides."""
    judge_margin: float = 1.0
    """A judge pair needs this many points (of 5) between the two answers' overall scores."""
    validation_fraction: float = 0.2
    """Share of the prompts whose pairs are held out to measure reward accuracy."""
    max_pairs_per_prompt: int = 8
    """A prompt with many answers makes kept x rejected pairs; this caps them so one prompt does not dominate."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PreferenceConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})

    def check(self) -> PreferenceConfig:
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown or not isinstance(self.sources, list | tuple):
            raise DatasetVersionError(f"Unknown pair source {unknown or self.sources!r}; use some of "
                                      f"{', '.join(SOURCES)}.")
        if "judge" in self.sources and not self.machine_pairs:
            raise DatasetVersionError("Judge pairs are machine pairs: turn machine_pairs on to use them.")
        for attr, low, high in (("judge_margin", 0.0, 4.0), ("validation_fraction", 0.0, 0.5)):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= float(value) <= high:
                raise DatasetVersionError(f"{attr} must be a number from {low:g} to {high:g} (got {value!r}).")
        if (isinstance(self.max_pairs_per_prompt, bool) or not isinstance(self.max_pairs_per_prompt, int)
                or not 1 <= self.max_pairs_per_prompt <= 100):
            raise DatasetVersionError("max_pairs_per_prompt must be a whole number from 1 to 100.")
        return self

    @property
    def used_sources(self) -> list[str]:
        return [s for s in SOURCES if s in self.sources or (s == "judge" and self.machine_pairs)]


@dataclass(frozen=True)
class PreferencePair:
    prompt: list[dict[str, str]]
    """The conversation up to the answer (ends with the user's turn)."""
    chosen: str
    rejected: str
    source: str
    provenance: dict[str, Any]
    seeds: frozenset[int] = frozenset()
    """Seed ids the rows derive from (for the held-out rule)."""

    @property
    def machine(self) -> bool:
        return self.source == "judge"

    @property
    def prompt_key(self) -> str:
        return prompt_key(self.prompt)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.prompt_key, self.chosen.strip(), self.rejected.strip())

    def to_dict(self) -> dict[str, Any]:
        """TRL's conversational preference layout plus where the pair came from."""
        return {"prompt": self.prompt, "chosen": [{"role": "assistant", "content": self.chosen}],
                "rejected": [{"role": "assistant", "content": self.rejected}], "source": self.source,
                "provenance": self.provenance}


@dataclass
class PairsPreview:
    pairs: list[PreferencePair]
    by_source: dict[str, int]
    dropped: dict[str, int]
    prompts: int

    def summary(self) -> str:
        if not self.pairs:
            lines = ["No preference pairs yet. Pairs come from prompts with both a kept and a rejected answer in "
                     "review, from reviewers' edits and from blind A/B votes in Compare."]
        else:
            lines = [f"{len(self.pairs)} preference pairs over {self.prompts} prompts."]
            lines += [f"  {n} from {SOURCE_TITLES[s]}" for s, n in self.by_source.items() if n]
        lines += [f"  left out {n}: {DROP_REASONS[r]}" for r, n in self.dropped.items() if n]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": [p.to_dict() for p in self.pairs], "by_source": self.by_source, "dropped": self.dropped,
                "prompts": self.prompts}


def prompt_key(prompt: list[dict[str, str]]) -> str:
    return json.dumps([[m["role"], " ".join(str(m["content"]).split())] for m in prompt], ensure_ascii=False)


def split_answer(fmt: SeedFormat | str, data: dict[str, Any]) -> tuple[list[dict[str, str]], str] | None:
    """(prompt messages, answer) of a chat row; None when it has no assistant answer."""
    try:
        msgs = to_messages(fmt, data)
    except (KeyError, TypeError, ValueError):
        return None
    if not msgs or msgs[-1]["role"] != "assistant" or len(msgs) < 2:
        return None
    return msgs[:-1], msgs[-1]["content"]


# --- collecting ---------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    candidate_id: int
    batch_id: int
    prompt: list[dict[str, str]]
    text: str
    verdict: str | None
    """Combined human verdict: accept | edit | reject | None (not reviewed)."""
    reviewers: list[str]
    judge: float | None
    seeds: frozenset[int]


def _answers(conn: sqlite3.Connection, project_id: int, batch_ids: list[int] | None,
             dropped: Counter[str]) -> tuple[list[_Answer], list[PreferencePair]]:
    """Every chat answer of the project's batches (discarded ones too: their reviews are real judgements), with
    its combined verdict and judge score; and the edit pairs."""
    rows = conn.execute(
        "SELECT c.id, c.batch_id, c.format, c.data, c.seed_ids, c.meta FROM candidate c JOIN batch b ON "
        "b.id = c.batch_id WHERE b.project_id = ? AND c.data IS NOT NULL ORDER BY c.id", (project_id,)).fetchall()
    reviews = conn.execute(
        "SELECT r.id, r.candidate_id, r.reviewer, r.verdict, r.edited_data FROM review r JOIN candidate c ON "
        "c.id = r.candidate_id JOIN batch b ON b.id = c.batch_id WHERE b.project_id = ? ORDER BY r.id",
        (project_id,)).fetchall()
    newest: dict[int, dict[str, sqlite3.Row]] = {}
    for r in reviews:
        newest.setdefault(r["candidate_id"], {})[r["reviewer"]] = r
    judged = {r["candidate_id"]: float(r["overall"]) for r in conn.execute(
        "SELECT j.candidate_id, j.overall FROM judgement j JOIN candidate c ON c.id = j.candidate_id JOIN batch b "
        "ON b.id = c.batch_id WHERE b.project_id = ? AND j.id = (SELECT MAX(j2.id) FROM judgement j2 WHERE "
        "j2.candidate_id = j.candidate_id)", (project_id,)) if r["overall"] is not None}
    from studio.data.versions import lineage

    wanted = set(batch_ids) if batch_ids is not None else None
    memo: dict[int, frozenset[int]] = {}
    answers: list[_Answer] = []
    edits: list[PreferencePair] = []
    for r in rows:
        if wanted is not None and r["batch_id"] not in wanted:
            continue
        try:
            data = json.loads(r["data"])
            fmt = SeedFormat(r["format"])
        except (TypeError, ValueError):
            continue
        if FORMATS[fmt].family != "chat":
            if r["id"] in newest or r["id"] in judged:
                dropped["not_chat"] += 1
            continue
        split = split_answer(fmt, data) if isinstance(data, dict) else None
        if split is None:
            continue
        prompt, text = split
        latest = list(newest.get(r["id"], {}).values())
        verdict: str | None = None
        edited_text: str | None = None
        edit_row: sqlite3.Row | None = None
        if latest:
            if any(v["verdict"] == "reject" for v in latest):
                verdict = "reject"
            elif any(v["verdict"] == "edit" and v["edited_data"] for v in latest):
                verdict = "edit"
                edit_row = [v for v in latest if v["verdict"] == "edit" and v["edited_data"]][-1]
            else:
                verdict = "accept"
        seeds = lineage(conn, r["id"], json.loads(r["seed_ids"] or "[]"), json.loads(r["meta"] or "{}"), memo)
        if edit_row is not None:
            edited = split_answer(fmt, json.loads(edit_row["edited_data"]))
            if edited is None or prompt_key(edited[0]) != prompt_key(prompt):
                dropped["prompt_edited"] += 1
                verdict = "accept-other-prompt"  # kept by the reviewer, but for a prompt of its own
            else:
                edited_text = edited[1]
                edits.append(PreferencePair(prompt, edited_text, text, "edit", {
                    "candidate_id": r["id"], "batch_id": r["batch_id"], "review_id": edit_row["id"],
                    "reviewer": edit_row["reviewer"]}, seeds))
        answers.append(_Answer(r["id"], r["batch_id"], prompt, edited_text if edited_text is not None else text,
                               verdict, [v["reviewer"] for v in latest], judged.get(r["id"]), seeds))
    return answers, edits


def _review_pairs(answers: list[_Answer], cap: int) -> list[PreferencePair]:
    out: list[PreferencePair] = []
    for group in _by_prompt(answers).values():
        kept = [a for a in group if a.verdict in ("accept", "edit")]
        rejected = [a for a in group if a.verdict == "reject"]
        made = 0
        for k in kept:
            for r in rejected:
                if made >= cap:
                    break
                out.append(PreferencePair(k.prompt, k.text, r.text, "review", {
                    "chosen_candidate_id": k.candidate_id, "rejected_candidate_id": r.candidate_id,
                    "batch_ids": sorted({k.batch_id, r.batch_id}), "chosen_verdict": k.verdict,
                    "reviewers": sorted(set(k.reviewers) | set(r.reviewers))}, k.seeds | r.seeds))
                made += 1
    return out


def _judge_pairs(answers: list[_Answer], margin: float, cap: int) -> list[PreferencePair]:
    out: list[PreferencePair] = []
    for group in _by_prompt(answers).values():
        scored = sorted((a for a in group if a.judge is not None and a.verdict != "accept-other-prompt"),
                        key=lambda a: (-(a.judge or 0.0), a.candidate_id))
        made = 0
        for i, hi in enumerate(scored):
            if hi.verdict == "reject":
                continue  # a person said no: never the chosen answer
            for lo in scored[i + 1:]:
                if made >= cap:
                    break
                if (hi.judge or 0.0) - (lo.judge or 0.0) >= margin:
                    out.append(PreferencePair(hi.prompt, hi.text, lo.text, "judge", {
                        "chosen_candidate_id": hi.candidate_id, "rejected_candidate_id": lo.candidate_id,
                        "chosen_score": hi.judge, "rejected_score": lo.judge, "margin": margin,
                        "batch_ids": sorted({hi.batch_id, lo.batch_id})}, hi.seeds | lo.seeds))
                    made += 1
    return out


def _by_prompt(answers: list[_Answer]) -> dict[str, list[_Answer]]:
    groups: dict[str, list[_Answer]] = {}
    for a in answers:
        if a.verdict == "accept-other-prompt":
            continue
        groups.setdefault(prompt_key(a.prompt), []).append(a)
    return groups


def _vote_pairs(conn: sqlite3.Connection, project_id: int) -> list[PreferencePair]:
    rows = conn.execute(
        "SELECT v.id, v.run_id, v.prompt, v.choice, v.voter, v.base_answer, v.tuned_answer, v.settings, "
        "v.base_model_ref FROM vote v JOIN run r ON r.id = v.run_id WHERE r.project_id = ? AND "
        "v.choice IN ('base', 'tuned') ORDER BY v.id", (project_id,)).fetchall()
    out: list[PreferencePair] = []
    for v in rows:
        if not v["base_answer"] or not v["tuned_answer"]:
            continue  # votes from before answers were stored say who won, not what was written
        settings = json.loads(v["settings"] or "{}")
        prompt: list[dict[str, str]] = []
        if settings.get("system"):
            prompt.append({"role": "system", "content": str(settings["system"])})
        prompt.append({"role": "user", "content": v["prompt"]})
        won, lost = ((v["tuned_answer"], v["base_answer"]) if v["choice"] == "tuned"
                     else (v["base_answer"], v["tuned_answer"]))
        out.append(PreferencePair(prompt, won, lost, "vote", {
            "vote_id": v["id"], "run_id": v["run_id"], "winner": v["choice"], "voter": v["voter"],
            "base_model_ref": v["base_model_ref"]}))
    return out


def collect_pairs(conn: sqlite3.Connection, project_id: int, cfg: PreferenceConfig,
                  batch_ids: list[int] | None = None) -> PairsPreview:
    """Every pair the config asks for, deduplicated (human sources first), in a stable order."""
    cfg.check()
    used = cfg.used_sources
    dropped: Counter[str] = Counter()
    answers, edits = _answers(conn, project_id, batch_ids, dropped)
    made: list[PreferencePair] = []
    if "review" in used:
        made += _review_pairs(answers, cfg.max_pairs_per_prompt)
    if "edit" in used:
        made += edits
    if "vote" in used:
        made += _vote_pairs(conn, project_id)
    if "judge" in used:
        made += _judge_pairs(answers, cfg.judge_margin, cfg.max_pairs_per_prompt)
    pairs: list[PreferencePair] = []
    seen: set[tuple[str, str, str]] = set()
    for p in made:
        if p.chosen.strip() == p.rejected.strip():
            dropped["same_answer"] += 1
        elif p.key in seen or (p.source == "judge" and (p.key[0], p.key[2], p.key[1]) in seen):
            dropped["duplicate"] += 1  # a judge pair that contradicts a human pair counts as a duplicate too
        else:
            seen.add(p.key)
            pairs.append(p)
    return PairsPreview(pairs, {s: sum(1 for p in pairs if p.source == s) for s in SOURCES},
                        {k: dropped[k] for k in DROP_REASONS if dropped[k]}, len({p.prompt_key for p in pairs}))


def build_pairs(ws: Workspace, project_id: int, cfg: PreferenceConfig | None = None,
                batch_ids: list[int] | None = None) -> PairsPreview:
    """The pairs freezing would consider (before the held-out rule); writes nothing."""
    with ws.read() as conn:
        return collect_pairs(conn, project_id, cfg or PreferenceConfig(), batch_ids)


# --- freezing ----------------------------------------------------------------------------------------------


def split_pairs(preview: PairsPreview, cfg: PreferenceConfig, *, held_out_seeds: set[int],
                held_out_prompts: set[str], rng_seed: int) -> tuple[dict[str, list[PreferencePair]], dict[str, int]]:
    """(split -> pairs, dropped) by the held-out rule, then prompts drawn into validation."""
    dropped = Counter(preview.dropped)
    usable = []
    for p in preview.pairs:
        if p.seeds & held_out_seeds or p.prompt_key in held_out_prompts:
            dropped["held_out"] += 1
        else:
            usable.append(p)
    prompts = sorted({p.prompt_key for p in usable})
    k = round(cfg.validation_fraction * len(prompts))
    if cfg.validation_fraction > 0 and k == 0 and len(prompts) >= 4:
        k = 1  # enough prompts to spare one: a held-out pair makes the reward accuracy measurable
    held = set(random.Random(f"{rng_seed}:preferences").sample(prompts, k)) if k else set()
    out = {"train": [p for p in usable if p.prompt_key not in held],
           "validation": [p for p in usable if p.prompt_key in held]}
    random.Random(f"{rng_seed}:preferences-order").shuffle(out["train"])
    return out, {r: dropped[r] for r in DROP_REASONS if dropped[r]}


def write_pairs(conn: sqlite3.Connection, version_id: int, pairs: dict[str, list[PreferencePair]]) -> None:
    conn.executemany(
        "INSERT INTO preference_pair(version_id, split, position, source, prompt, chosen, rejected, provenance) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(version_id, split, pos, p.source, json.dumps(p.prompt, ensure_ascii=False), p.chosen, p.rejected,
          json.dumps(p.provenance, ensure_ascii=False))
         for split in PAIR_SPLITS for pos, p in enumerate(pairs.get(split, []))])


def pair_stats(pairs: dict[str, list[PreferencePair]], dropped: dict[str, int],
               cfg: PreferenceConfig) -> dict[str, Any]:
    every = [p for split in PAIR_SPLITS for p in pairs.get(split, [])]
    return {"sizes": {s: len(pairs.get(s, [])) for s in PAIR_SPLITS},
            "by_source": {s: sum(1 for p in every if p.source == s) for s in SOURCES},
            "machine": sum(1 for p in every if p.machine), "prompts": len({p.prompt_key for p in every}),
            "dropped": dropped, "config": cfg.to_dict()}


def preference_pairs(ws: Workspace, version_id: int, split: str | None = None) -> list[dict[str, Any]]:
    """The version's frozen pairs as TRL's conversational preference rows (plus source and provenance)."""
    if split is not None and split not in PAIR_SPLITS:
        raise DatasetVersionError(f"'{split}' is not a preference split; use train or validation.")
    sql = "SELECT * FROM preference_pair WHERE version_id = ?"
    args: list[Any] = [version_id]
    if split is not None:
        sql += " AND split = ?"
        args.append(split)
    sql += " ORDER BY CASE split WHEN 'train' THEN 0 ELSE 1 END, position"
    with ws.read() as conn:
        rows = conn.execute(sql, args).fetchall()
    return [{"split": r["split"], "prompt": json.loads(r["prompt"]),
             "chosen": [{"role": "assistant", "content": r["chosen"]}],
             "rejected": [{"role": "assistant", "content": r["rejected"]}], "source": r["source"],
             "provenance": json.loads(r["provenance"] or "{}")} for r in rows]

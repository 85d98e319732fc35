"""The automatic filters of the review step: every generated row gets a pass/fail, a score and a reason
per filter. Nothing is deleted: a failed row stays in the batch with its reasons, and the review sample
and the selection read the marks (`passing_ids`).

Which text each filter reads (`summary_text(format, data)` gives (prompt, answer)):
- exact / near / semantic duplicates: the whole row, prompt + "\\n" + answer; for classification the
  text alone (the same text with another label is still the same example), for NER the tokens;
- seed_overlap: the instruction only, as Self-Instruct compares instructions (alpaca: `instruction`;
  prompt_completion: the prompt; messages: the last user message; classification: the text; NER: the
  tokens): a row that reuses a seed's task with a new answer is what it is there to catch;
- heuristics: chat rows only (instruction / input / output); classification and NER rows get
  passed=True with the reason "not applicable to ... rows", so every enabled filter has an outcome;
- refusal: the output and the instruction of chat rows; the text (tokens) of classification (NER) rows;
- prompt_echo: the whole row (as the duplicate filters), for every strategy; wording the row's own seeds
  contain is not an echo (the seed's text is in the prompt);
- fidelity: instruction-expansion and instruction-refinement rows only, the instruction against the
  instruction of the one seed it rewords (seed_ids); other strategies get passed=True with the reason
  "not applicable to ... rows".

Duplicates are judged against the project's seeds, the rows already selected from the project's other
batches (the `selection` table: the reviewer's edit where there was one), then the batch itself in row
order; the first occurrence passes and later ones fail, naming the seed or row they repeat.

Parse failures (no data) fail the `parse` filter with the stored parse error; the other filters have
nothing to read and record no outcome for them. A parse failure never passes, even with `parse` off.
Turning a filter off means no outcome rows for it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from studio.data.formats import FORMATS, SeedFormat, summary_text
from studio.errors import QualityError
from studio.quality.heuristics import HEURISTIC_RULES, chat_parts, find_refusal, heuristic_problems
from studio.workspace import Workspace, utc_now

if TYPE_CHECKING:
    import numpy as np

    from studio.workspace.seeds import Seed

FILTER_NAMES: tuple[str, ...] = ("parse", "exact_duplicate", "near_duplicate", "semantic_duplicate",
                                 "seed_overlap", "heuristics", "refusal", "prompt_echo", "fidelity")

FIDELITY_THRESHOLD = 0.45
"""Default cosine below which a rewording has drifted from its seed. Calibrated on the real Self-Instruct
seeds by bench/fidelity_calibration.py (bench/RESULTS.md, "Fidelity", 2026-12-03): 48 hand-written
faithful rewordings of 24 seeds score 0.51-0.94 (paraphrases) and 0.62-0.90 (refinements); a seed against
another seed's instruction at most 0.65 (p95 0.31), teacher-style junk against a seed at most 0.47 (p95
0.26), the 8 real rows of an embedded-teacher expansion batch at most 0.43. 0.45 is the lowest faithful
pair minus a 0.05 margin: it keeps all 48 and catches 99.3% of the 3,152 drifted pairs, all 8 real rows
among them (balanced accuracy 0.997; the optimum, 0.998 at 0.50, sits right under the lowest faithful pair,
which short generic instructions like "Answer the following question." would undercut)."""

FIDELITY_STRATEGIES = ("instruction-expansion", "instruction-refinement")
"""Strategies whose rows reword one seed's instruction (the seed's answer must still fit): the rows
`fidelity` checks. Response expansion keeps the seed's request and writes a new answer in a named style:
valid answers score far lower against the seed's answer than rewordings do against its instruction (12
hand-written ones: 0.33-0.92, 3 under 0.45), and the gap to junk (at most 0.24) is too thin on so few to
calibrate a second default (bench/RESULTS.md, "Fidelity"); the judge scores answers. So those rows, like
few-shot rows (new tasks) and the offline perturbations, are "not applicable"."""

Embed = Callable[[list[str]], "np.ndarray"]
"""texts -> (len(texts), dim) float32 unit vectors."""


@dataclass(frozen=True)
class ThresholdInfo:
    field: str
    title: str
    help: str
    minimum: float
    maximum: float | None
    integer: bool = False


@dataclass(frozen=True)
class FilterInfo:
    name: str
    title: str
    help: str
    thresholds: tuple[ThresholdInfo, ...] = ()


_NEAR = ThresholdInfo("near_duplicate_threshold", "Near-duplicate threshold (Jaccard)",
                      "Rows whose word 3-grams overlap at least this much (Jaccard similarity, 0-1) count as "
                      "near-duplicates. Lower it to catch looser copies.", 0.0, 1.0)
_SEMANTIC = ThresholdInfo("semantic_threshold", "Semantic-duplicate threshold (cosine)",
                          "Rows whose sentence embeddings have at least this cosine similarity (0-1) say the "
                          "same thing in other words. Lower it to catch looser paraphrases.", 0.0, 1.0)
_OVERLAP = ThresholdInfo("seed_overlap_threshold", "Seed-overlap threshold (ROUGE-L)",
                         "Instructions whose ROUGE-L F with a seed instruction is above this (0-1) only "
                         "reword a seed. Self-Instruct uses 0.7.", 0.0, 1.0)
_MIN_WORDS = ThresholdInfo("min_words", "Minimum instruction words",
                           "Instructions shorter than this are too vague to learn from.", 0, None, integer=True)
_MAX_WORDS = ThresholdInfo("max_words", "Maximum instruction words",
                           "Instructions longer than this are usually rambling or pasted junk.", 1, None,
                           integer=True)
_FIDELITY = ThresholdInfo("fidelity_threshold", "Fidelity threshold (cosine)",
                          "A reworded or refined instruction whose sentence embedding has a cosine similarity "
                          "below this (0-1) with its seed's instruction no longer asks for the same thing. "
                          "Raise it to demand closer rewordings.", 0.0, 1.0)
THRESHOLDS: dict[str, ThresholdInfo] = {t.field: t for t in (_NEAR, _SEMANTIC, _OVERLAP, _MIN_WORDS, _MAX_WORDS,
                                                             _FIDELITY)}

FILTERS: dict[str, FilterInfo] = {f.name: f for f in (
    FilterInfo("parse", "Could not be read",
               "The teacher's answer could not be read as a row. The reason is the parse error."),
    FilterInfo("exact_duplicate", "Exact duplicates",
               "The same text as a seed, an already selected row or an earlier row of this batch, ignoring "
               "case, punctuation and spacing. The first occurrence is kept."),
    FilterInfo("near_duplicate", "Near-duplicates",
               "Almost the same words as a seed or an earlier row (MinHash estimate of the Jaccard "
               "similarity of word 3-grams). The first occurrence is kept.", (_NEAR,)),
    FilterInfo("semantic_duplicate", "Same meaning",
               "Says the same thing as a seed or an earlier row in other words (cosine similarity of "
               "sentence embeddings, all-MiniLM-L6-v2). The first occurrence is kept. Loads the embedding "
               "model (a few seconds).", (_SEMANTIC,)),
    FilterInfo("seed_overlap", "Too close to a seed",
               "The instruction only rewords a seed instruction (ROUGE-L F above the threshold, as "
               "Self-Instruct): it adds no new task.", (_OVERLAP,)),
    FilterInfo("heuristics", "Self-Instruct rules",
               "Chat rows only: " + " ".join(HEURISTIC_RULES.values()), (_MIN_WORDS, _MAX_WORDS)),
    FilterInfo("refusal", "Refusals and AI-isms",
               "The teacher refused or talked about itself (\"As an AI language model\", \"I'm sorry, but I "
               "can't\", \"I don't have personal opinions\"): not an answer to learn from."),
    FilterInfo("prompt_echo", "Echoes the prompt",
               "The row repeats the wording of the prompt the teacher was given (\"JSON array\", \"Request:\", "
               "\"Example 1:\", \"Rewrite the request below\") or talks about the task (\"Here are 3 "
               "examples:\", \"here is a possible response\") instead of doing it. Wording its own seed "
               "contains does not count."),
    FilterInfo("fidelity", "Drifted from its seed",
               "Instruction expansion and refinement rows must ask for what their seed asks for: the "
               "instruction's sentence embedding (all-MiniLM-L6-v2) is compared with its seed's, and a cosine "
               "below the threshold fails. Other strategies are not checked. Loads the embedding model (a few "
               "seconds).", (_FIDELITY,)),
)}


@dataclass
class FilterConfig:
    enabled: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FILTER_NAMES, True))
    near_duplicate_threshold: float = 0.8
    semantic_threshold: float = 0.9
    seed_overlap_threshold: float = 0.7
    min_words: int = 3
    max_words: int = 150
    fidelity_threshold: float = FIDELITY_THRESHOLD

    def is_on(self, name: str) -> bool:
        return bool(self.enabled.get(name, True))

    def to_dict(self) -> dict[str, Any]:
        return {"enabled": {n: self.is_on(n) for n in FILTER_NAMES},
                **{name: getattr(self, name) for name in THRESHOLDS}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> FilterConfig:
        """Defaults for what is missing; QualityError for unknown settings or values that are not numbers."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"enabled", *THRESHOLDS})
        if unknown:
            raise QualityError(f"Unknown filter setting {', '.join(map(repr, unknown))}. The settings are: "
                               f"enabled, {', '.join(THRESHOLDS)}.")
        enabled = data.pop("enabled", None) or {}
        if not isinstance(enabled, Mapping):
            raise QualityError("'enabled' must map filter names to true/false, for example "
                               '{"semantic_duplicate": false}.')
        config = cls(enabled={**dict.fromkeys(FILTER_NAMES, True), **enabled})
        for name, value in data.items():
            info = THRESHOLDS[name]
            number = _number(value, info)
            setattr(config, name, int(number) if info.integer else number)
        return config

    def check(self) -> None:
        """Raise QualityError, in plain words, for any setting the filters cannot run with."""
        for name, on in self.enabled.items():
            if name not in FILTER_NAMES:
                raise QualityError(f"Unknown filter '{name}'. The filters are: {', '.join(FILTER_NAMES)}.")
            if not isinstance(on, bool):
                raise QualityError(f"Filter '{name}' must be switched on or off (true or false); got {on!r}.")
        for info in (_NEAR, _SEMANTIC, _OVERLAP, _FIDELITY):
            value = _number(getattr(self, info.field), info)
            if not 0 < value <= 1:
                raise QualityError(f"{info.title} must be above 0 and at most 1; got {value:g}. "
                                   f"{info.help}")
        for info in (_MIN_WORDS, _MAX_WORDS):
            value = _number(getattr(self, info.field), info)
            if value != int(value) or value < info.minimum:
                raise QualityError(f"{info.title} must be a whole number of at least {info.minimum:g}; "
                                   f"got {value:g}.")
        if self.min_words > self.max_words:
            raise QualityError(f"Minimum instruction words ({self.min_words}) is more than the maximum "
                               f"({self.max_words}): lower the minimum or raise the maximum.")


def _number(value: Any, info: ThresholdInfo) -> float:
    try:
        number = math.nan if isinstance(value, bool) else float(value)  # True is not a threshold
    except (TypeError, ValueError):
        number = math.nan
    if math.isnan(number) or math.isinf(number):
        raise QualityError(f"{info.title} must be a number; got {value!r}.")
    return number


@dataclass(frozen=True)
class FilterOutcome:
    candidate_id: int
    filter: str
    passed: bool
    score: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"candidate_id": self.candidate_id, "filter": self.filter, "passed": self.passed,
                "score": self.score, "reason": self.reason}


@dataclass
class FilterReport:
    outcomes: list[FilterOutcome]
    total: int
    passed_ids: list[int]
    failed_by: dict[str, int]
    """Rows failed per enabled filter (a row failing two filters counts in both)."""
    first_failure: dict[int, FilterOutcome]
    """candidate id -> its first failed outcome, in FILTER_NAMES order (rows that passed are absent)."""
    config: FilterConfig = field(default_factory=FilterConfig)

    @property
    def kept(self) -> int:
        return len(self.passed_ids)

    def summary(self) -> dict[str, str]:
        """Per enabled filter, 'removed N' (removed from what goes on to review; the rows stay stored)."""
        return {name: f"removed {n}" for name, n in self.failed_by.items()}

    def by_candidate(self) -> dict[int, list[FilterOutcome]]:
        out: dict[int, list[FilterOutcome]] = {}
        for o in self.outcomes:
            out.setdefault(o.candidate_id, []).append(o)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "kept": self.kept, "passed_ids": self.passed_ids,
                "failed_by": self.failed_by, "summary": self.summary(),
                "first_failure": {str(k): v.to_dict() for k, v in self.first_failure.items()},
                "config": self.config.to_dict(), "outcomes": [o.to_dict() for o in self.outcomes]}


class CandidateLike(Protocol):
    id: int
    format: SeedFormat
    data: dict[str, Any] | None


@dataclass(frozen=True)
class ReferenceRow:
    """A row already selected from another batch of the project: new rows must not repeat it."""

    candidate_id: int
    batch_id: int
    format: SeedFormat
    data: dict[str, Any]


# --- which text each filter reads ------------------------------------------------------------------------


def row_text(fmt: SeedFormat, data: dict[str, Any]) -> str:
    """What the duplicate filters compare: the whole row (classification: the text; NER: the tokens)."""
    if fmt == SeedFormat.CLASSIFICATION:
        return str(data.get("text", ""))
    if fmt == SeedFormat.NER:
        return " ".join(data.get("tokens", []))
    prompt, answer = summary_text(fmt, data)
    return prompt + "\n" + answer


def instruction_text(fmt: SeedFormat, data: dict[str, Any]) -> str:
    """What seed_overlap compares: the instruction alone, as Self-Instruct does."""
    if fmt == SeedFormat.ALPACA:
        return str(data.get("instruction", ""))
    return summary_text(fmt, data)[0]


@dataclass(frozen=True)
class _Item:
    label: str
    format: SeedFormat
    data: dict[str, Any]


def run_filters(candidates: Iterable[CandidateLike], seeds: Sequence[Seed], config: FilterConfig, *,
                reference: Sequence[ReferenceRow] = (), embed: Embed | None = None,
                prompt_template: str = "") -> FilterReport:
    """Run every enabled filter over the rows; pure (reads and writes no database).

    `embed` is needed only when semantic_duplicate is on (preview and apply pass workspace_embed(ws)).
    `prompt_template`: the prompt the rows were written with, when it is not a shipped one (an edited prompt
    version): prompt_echo then also finds its wording.
    """
    config.check()
    cands = list(candidates)
    usable = [c for c in cands if c.data is not None]
    seed_by_id = {s.id: s for s in seeds}
    needs_embed = config.is_on("semantic_duplicate") or (
        config.is_on("fidelity") and any(_fidelity_seed(c, seed_by_id) is not None for c in usable))
    if needs_embed and embed is None:
        raise ValueError("run_filters needs `embed` (texts -> unit vectors) when semantic_duplicate is on, or "
                         "fidelity is on and a row rewords a seed")
    prior = ([_Item(f"seed #{s.id}", s.format, s.data) for s in seeds]
             + [_Item(f"row #{r.candidate_id} (selected from batch #{r.batch_id})", r.format, r.data)
                for r in reference])
    items = prior + [_Item(f"row #{c.id}", c.format, c.data) for c in usable]  # type: ignore[arg-type]
    n_prior, n_seeds = len(prior), len(seeds)
    found: dict[str, list[FilterOutcome]] = {}

    if config.is_on("parse"):
        found["parse"] = [FilterOutcome(c.id, "parse", c.data is not None, None, "" if c.data is not None else
                                        (getattr(c, "parse_error", "") or "the teacher's answer could not be "
                                                                          "read as a row"))
                          for c in cands]
    if usable:
        texts = [row_text(it.format, it.data) for it in items]
        if config.is_on("exact_duplicate"):
            found["exact_duplicate"] = _exact(usable, items, n_prior, texts)
        if config.is_on("near_duplicate"):
            from studio.quality.dedupe import near_matches

            t = config.near_duplicate_threshold
            found["near_duplicate"] = _dupes(
                usable, items, n_prior, near_matches(texts, n_prior, t, prefer_below=n_seeds), "near_duplicate",
                lambda label, sim: f"near-duplicate of {label} (Jaccard {sim:.2f} ≥ {t:g})")
        if config.is_on("semantic_duplicate"):
            from studio.quality.dedupe import semantic_matches

            assert embed is not None
            t = config.semantic_threshold
            found["semantic_duplicate"] = _dupes(
                usable, items, n_prior, semantic_matches(_embed_unique(embed, texts), n_prior, t, prefer_below=n_seeds),
                "semantic_duplicate", lambda label, sim: f"says the same as {label} (cosine {sim:.2f} ≥ {t:g})")
        if config.is_on("seed_overlap"):
            found["seed_overlap"] = _seed_overlap(usable, seeds, config.seed_overlap_threshold)
        for name in ("semantic_duplicate", "seed_overlap"):
            if name in found:
                found[name] = [_not_for_perturbations(c, o) for c, o in zip(usable, found[name], strict=True)]
        if config.is_on("heuristics"):
            found["heuristics"] = [_heuristics(c, config) for c in usable]
        if config.is_on("refusal"):
            found["refusal"] = [_refusal(c) for c in usable]
        if config.is_on("prompt_echo"):
            from studio.quality.echo import phrases_with

            phrases = phrases_with(prompt_template)
            found["prompt_echo"] = [_prompt_echo(c, seed_by_id, phrases) for c in usable]
        if config.is_on("fidelity"):
            found["fidelity"] = _fidelity(usable, seed_by_id, config.fidelity_threshold, embed)
    return _report(cands, found, config)


def _embed_unique(embed: Embed, texts: list[str]) -> np.ndarray:
    """Embed each distinct text once (a teacher repeats itself verbatim often enough to matter)."""
    import numpy as np

    unique = list(dict.fromkeys(texts))
    vectors = np.asarray(embed(unique), dtype=np.float32)
    if len(vectors) != len(unique):
        raise ValueError(f"embed returned {len(vectors)} vectors for {len(unique)} texts")
    # Unit length again, so a dot product is the cosine whatever precision the model ran in.
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    where = {text: i for i, text in enumerate(unique)}
    return vectors[[where[t] for t in texts]]


def _exact(usable: list[CandidateLike], items: list[_Item], n_prior: int, texts: list[str]) -> list[FilterOutcome]:
    from studio.quality.dedupe import exact_matches

    out = []
    for c, m in zip(usable, exact_matches(texts, n_prior), strict=True):
        if m.duplicate_of is None:
            out.append(FilterOutcome(c.id, "exact_duplicate", True, 0.0, ""))
            continue
        twin = items[m.duplicate_of]
        reason = f"same as {twin.label}"
        assert c.data is not None
        if c.format == SeedFormat.CLASSIFICATION and twin.data.get("label") != c.data.get("label"):
            reason += f" (labelled '{twin.data.get('label')}' there, '{c.data.get('label')}' here)"
        out.append(FilterOutcome(c.id, "exact_duplicate", False, 1.0, reason))
    return out


def _dupes(usable: list[CandidateLike], items: list[_Item], n_prior: int, matches: list[Any], name: str,
           describe: Callable[[str, float], str]) -> list[FilterOutcome]:
    out = []
    for c, m in zip(usable, matches, strict=True):
        score = round(float(m.score), 4)
        if m.duplicate_of is None:
            out.append(FilterOutcome(c.id, name, True, score, ""))
        else:
            out.append(FilterOutcome(c.id, name, False, score, describe(items[m.duplicate_of].label, m.similarity)))
    return out


PERTURBATION_STRATEGIES = ("nlpaug", "entity-swap")
"""Strategies whose rows keep their seed's meaning and most of its words on purpose (typos, swapped names):
"says the same as a seed" and "too close to a seed" describe every such row, so those two filters pass them
with a note (exact and near duplicates still apply: a perturbation that changed nothing adds nothing)."""


def _not_for_perturbations(c: CandidateLike, outcome: FilterOutcome) -> FilterOutcome:
    strategy = getattr(c, "strategy", "")
    if strategy not in PERTURBATION_STRATEGIES or outcome.passed:
        return outcome
    return FilterOutcome(outcome.candidate_id, outcome.filter, True, outcome.score,
                         f"not applied to {strategy} rows: they stay close to their seed on purpose "
                         f"(would have been: {outcome.reason})")


def _seed_overlap(usable: list[CandidateLike], seeds: Sequence[Seed], threshold: float) -> list[FilterOutcome]:
    from studio.quality.seed_overlap import best_overlaps

    overlaps = best_overlaps([instruction_text(c.format, c.data) for c in usable],  # type: ignore[arg-type]
                             [instruction_text(s.format, s.data) for s in seeds], threshold)
    out = []
    for c, o in zip(usable, overlaps, strict=True):
        # Self-Instruct keeps an instruction when its ROUGE-L is at most 0.7: fail only above the threshold.
        too_close = o.seed is not None and o.score > threshold
        reason = f"too close to seed #{seeds[o.seed].id} (ROUGE-L {o.score:.2f} > {threshold:g})" if too_close else ""
        out.append(FilterOutcome(c.id, "seed_overlap", not too_close, round(o.score, 4), reason))
    return out


def _heuristics(c: CandidateLike, config: FilterConfig) -> FilterOutcome:
    assert c.data is not None
    parts = chat_parts(c.format, c.data)
    if parts is None:
        return FilterOutcome(c.id, "heuristics", True, None,
                             f"not applicable to {FORMATS[c.format].title.split(' (')[0].lower()} rows")
    problems = heuristic_problems(parts, min_words=config.min_words, max_words=config.max_words)
    return FilterOutcome(c.id, "heuristics", not problems, float(len(problems)), "; ".join(problems))


def _refusal(c: CandidateLike) -> FilterOutcome:
    assert c.data is not None
    parts = chat_parts(c.format, c.data)
    where = ([("output", parts.output), ("instruction", parts.instruction)] if parts else
             [("text", row_text(c.format, c.data))])
    for what, text in where:
        phrase = find_refusal(text)
        if phrase:
            return FilterOutcome(c.id, "refusal", False, 1.0, f'the {what} says "{phrase}"')
    return FilterOutcome(c.id, "refusal", True, 0.0, "")


def _prompt_echo(c: CandidateLike, seed_by_id: Mapping[int, Seed],
                 phrases: frozenset[tuple[str, ...]] | None = None) -> FilterOutcome:
    from studio.quality.echo import find_echo

    assert c.data is not None
    own = [row_text(seed_by_id[i].format, seed_by_id[i].data) for i in getattr(c, "seed_ids", ())
           if i in seed_by_id]
    phrase = find_echo(row_text(c.format, c.data), exempt=own, phrases=phrases)
    if phrase:
        return FilterOutcome(c.id, "prompt_echo", False, 1.0, f'echoes the prompt: "{phrase}"')
    return FilterOutcome(c.id, "prompt_echo", True, 0.0, "")


def _fidelity_seed(c: CandidateLike, seed_by_id: Mapping[int, Seed]) -> Seed | None:
    """The one seed a rewording row must stay faithful to; None when the filter does not apply."""
    seed_ids = getattr(c, "seed_ids", None) or []
    if getattr(c, "strategy", "") not in FIDELITY_STRATEGIES or len(seed_ids) != 1 or c.data is None:
        return None
    seed = seed_by_id.get(seed_ids[0])
    if seed is None or c.format in (SeedFormat.CLASSIFICATION, SeedFormat.NER) or seed.format != c.format:
        return None
    return seed


def _fidelity(usable: list[CandidateLike], seed_by_id: Mapping[int, Seed], threshold: float,
              embed: Embed | None) -> list[FilterOutcome]:
    pairs = {c.id: seed for c in usable if (seed := _fidelity_seed(c, seed_by_id)) is not None}
    sims: dict[int, float] = {}
    if pairs:
        assert embed is not None
        checked = [c for c in usable if c.id in pairs]
        texts = ([instruction_text(c.format, c.data) for c in checked]  # type: ignore[arg-type]
                 + [instruction_text(pairs[c.id].format, pairs[c.id].data) for c in checked])
        vectors = _embed_unique(embed, texts)
        n = len(checked)
        sims = {c.id: float(vectors[i] @ vectors[n + i]) for i, c in enumerate(checked)}
    out = []
    for c in usable:
        if c.id not in pairs:
            out.append(FilterOutcome(c.id, "fidelity", True, None, _fidelity_not_applicable(c, seed_by_id)))
            continue
        sim = sims[c.id]
        drifted = sim < threshold
        reason = (f"drifted from seed #{pairs[c.id].id} (cosine {sim:.2f} < {threshold:g}): it no longer asks "
                  "for the same thing" if drifted else "")
        out.append(FilterOutcome(c.id, "fidelity", not drifted, round(sim, 4), reason))
    return out


def _fidelity_not_applicable(c: CandidateLike, seed_by_id: Mapping[int, Seed]) -> str:
    strategy = getattr(c, "strategy", "")
    if not strategy:
        return "not applicable to rows without a strategy: only rewordings of one seed's instruction are checked"
    if strategy not in FIDELITY_STRATEGIES:
        return f"not applicable to {strategy} rows: only rewordings of one seed's instruction are checked"
    seed_ids = getattr(c, "seed_ids", None) or []
    if len(seed_ids) != 1:
        return f"not applicable: the row names {len(seed_ids)} seeds, not the one it rewords"
    if seed_ids[0] not in seed_by_id:
        return f"not applicable: its seed #{seed_ids[0]} is no longer in the project"
    return (f"not applicable to {FORMATS[c.format].title.split(' (')[0].lower()} rows of a "
            f"{FORMATS[seed_by_id[seed_ids[0]].format].title.split(' (')[0].lower()} seed")


def _report(cands: list[CandidateLike], found: dict[str, list[FilterOutcome]], config: FilterConfig) -> FilterReport:
    per: dict[int, list[FilterOutcome]] = {c.id: [] for c in cands}
    for name in FILTER_NAMES:  # per row, outcomes in FILTER_NAMES order
        for o in found.get(name, []):
            per[o.candidate_id].append(o)
    outcomes = [o for c in cands for o in per[c.id]]
    first_failure = {cid: next(o for o in os if not o.passed) for cid, os in per.items()
                     if any(not o.passed for o in os)}
    passed = [c.id for c in cands if c.data is not None and c.id not in first_failure]
    failed_by = {name: sum(not o.passed for o in found.get(name, [])) for name in FILTER_NAMES if config.is_on(name)}
    return FilterReport(outcomes, len(cands), passed, failed_by, first_failure, config)


# --- the workspace -------------------------------------------------------------------------------------


def _batch_row(conn: Any, batch_id: int) -> Any:
    r = conn.execute("SELECT b.id, b.project_id, b.status, b.filtered_at, b.prompt_version_id, "
                     "j.status AS job_status FROM batch b LEFT JOIN job j ON j.id = b.job_id WHERE b.id = ?",
                     (batch_id,)).fetchone()
    if r is None:
        raise QualityError(f"There is no batch {batch_id}. `seed-studio batches list` shows the batches.")
    return r


def _check_writable(batch: Any) -> None:
    from studio import jobs
    from studio.augment.batches import REVIEW_STATES

    if batch["job_status"] in jobs.ACTIVE:
        raise QualityError(f"Batch {batch['id']} is still generating. Filter it once it has finished or been "
                           "stopped; the preview works meanwhile.")
    if batch["status"] in REVIEW_STATES:
        raise QualityError(f"Batch {batch['id']} has been through the review gate ({batch['status']}); its "
                           "selection rests on these filter results. Reopen the batch before filtering it again.")


def reference_rows(ws: Workspace, project_id: int, *, exclude_batch_id: int | None = None) -> list[ReferenceRow]:
    """Rows selected from the project's batches (other than `exclude_batch_id`), as selected (edits applied)."""
    with ws.read() as conn:
        rows = conn.execute(
            "SELECT s.candidate_id, s.batch_id, c.format, s.data FROM selection s "
            "JOIN candidate c ON c.id = s.candidate_id JOIN batch b ON b.id = s.batch_id "
            "WHERE b.project_id = ? AND s.batch_id IS NOT ? ORDER BY s.id", (project_id, exclude_batch_id)).fetchall()
    return [ReferenceRow(r["candidate_id"], r["batch_id"], SeedFormat(r["format"]), json.loads(r["data"]))
            for r in rows]


def _run(ws: Workspace, batch_id: int, config: FilterConfig, *, for_write: bool) -> tuple[FilterReport, list[int]]:
    from studio.augment.candidates import list_candidates
    from studio.workspace.seeds import list_seeds

    config.check()
    with ws.read() as conn:
        batch = _batch_row(conn, batch_id)
    if for_write:
        _check_writable(batch)
    cands = list_candidates(ws, batch_id=batch_id)
    if not cands:
        raise QualityError(f"Batch {batch_id} has no rows to filter yet. Generate some rows first.")
    # Lazy: the model loads only when a filter embeds something.
    embed = workspace_embed(ws) if config.is_on("semantic_duplicate") or config.is_on("fidelity") else None
    report = run_filters(cands, list_seeds(ws, batch["project_id"]), config,
                         reference=reference_rows(ws, batch["project_id"], exclude_batch_id=batch_id), embed=embed,
                         prompt_template=_batch_template(ws, batch))
    return report, [c.id for c in cands]


def _batch_template(ws: Workspace, batch: Any) -> str:
    """The prompt version a teacher batch was written with ("" for other batches, or one whose version is gone)."""
    if not batch["prompt_version_id"]:
        return ""
    from studio.augment.prompt_versions import get_version
    from studio.errors import TemplateError

    try:
        return get_version(ws, int(batch["prompt_version_id"])).template
    except TemplateError:
        return ""


def workspace_embed(ws: Workspace) -> Embed:
    """embed_texts with the workspace's embedding model (batched, bfloat16 where the CPU computes it natively)."""
    from studio.quality.embeddings import embed_texts

    return lambda texts: embed_texts(ws, texts)


def preview_filters(ws: Workspace, batch_id: int, config: FilterConfig) -> FilterReport:
    """What the filters would mark, without writing anything."""
    return _run(ws, batch_id, config, for_write=False)[0]


def _params(config: FilterConfig, name: str) -> str:
    from studio.models.registry import EMBEDDED_EMBEDDER
    from studio.quality.dedupe import NUM_PERM, SHINGLE_WORDS
    from studio.quality.echo import ECHO_PATTERNS, WINDOW, template_names

    params: dict[str, Any] = {
        "near_duplicate": {"threshold": config.near_duplicate_threshold, "num_perm": NUM_PERM,
                           "shingle_words": SHINGLE_WORDS},
        "semantic_duplicate": {"threshold": config.semantic_threshold, "model": EMBEDDED_EMBEDDER},
        "seed_overlap": {"threshold": config.seed_overlap_threshold, "compares": "instruction"},
        "heuristics": {"min_words": config.min_words, "max_words": config.max_words},
        "prompt_echo": {"templates": template_names(), "window_words": WINDOW, "patterns": len(ECHO_PATTERNS)},
        "fidelity": {"threshold": config.fidelity_threshold, "model": EMBEDDED_EMBEDDER, "compares": "instruction",
                     "strategies": list(FIDELITY_STRATEGIES)},
    }.get(name, {})
    return json.dumps(params)


def apply_filters(ws: Workspace, batch_id: int, config: FilterConfig) -> FilterReport:
    """Run the filters and store their marks: this batch's earlier results are replaced, and the batch
    remembers the settings and the time, all in one transaction."""
    report, ids = _run(ws, batch_id, config, for_write=True)
    now = utc_now()
    params = {name: _params(config, name) for name in FILTER_NAMES}
    with ws.write() as conn:
        _check_writable(_batch_row(conn, batch_id))
        current = [r[0] for r in conn.execute("SELECT id FROM candidate WHERE batch_id = ? ORDER BY id", (batch_id,))]
        if current != ids:
            raise QualityError(f"Batch {batch_id} changed while the filters ran (rows were added or removed). "
                               "Run the filters again.")
        conn.execute("DELETE FROM filter_result WHERE candidate_id IN (SELECT id FROM candidate WHERE batch_id = ?)",
                     (batch_id,))
        conn.executemany(
            "INSERT INTO filter_result(candidate_id, filter, passed, score, reason, params, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(o.candidate_id, o.filter, int(o.passed), o.score, o.reason, params[o.filter], now)
             for o in report.outcomes])
        conn.execute("UPDATE batch SET filter_config = ?, filtered_at = ? WHERE id = ?",
                     (json.dumps(config.to_dict()), now, batch_id))
    return report


def stored_results(ws: Workspace, batch_id: int) -> dict[int, list[FilterOutcome]]:
    """candidate id -> its stored outcomes (FILTER_NAMES order); empty when the batch was never filtered."""
    order = {name: i for i, name in enumerate(FILTER_NAMES)}
    with ws.read() as conn:
        _batch_row(conn, batch_id)
        rows = conn.execute("SELECT fr.* FROM filter_result fr JOIN candidate c ON c.id = fr.candidate_id "
                            "WHERE c.batch_id = ? ORDER BY fr.candidate_id", (batch_id,)).fetchall()
    out: dict[int, list[FilterOutcome]] = {}
    for r in rows:
        out.setdefault(r["candidate_id"], []).append(
            FilterOutcome(r["candidate_id"], r["filter"], bool(r["passed"]), r["score"], r["reason"]))
    for outcomes in out.values():
        outcomes.sort(key=lambda o: order.get(o.filter, len(order)))
    return out


def stored_config(ws: Workspace, batch_id: int) -> FilterConfig | None:
    """The settings the batch was last filtered with; None when it never was."""
    with ws.read() as conn:
        batch = conn.execute("SELECT filter_config, filtered_at FROM batch WHERE id = ?", (batch_id,)).fetchone()
    if batch is None:
        raise QualityError(f"There is no batch {batch_id}. `seed-studio batches list` shows the batches.")
    if not batch["filtered_at"]:
        return None
    return FilterConfig.from_dict(json.loads(batch["filter_config"] or "{}"))


def passing_ids(ws: Workspace, batch_id: int) -> list[int] | None:
    """Usable rows of the batch that passed every filter it was filtered with; None when never filtered.

    A row generated after the filters ran (the batch was resumed) has no marks and does not pass until
    the batch is filtered again, unless every filter was off.
    """
    config = stored_config(ws, batch_id)
    if config is None:
        return None
    any_on = any(config.is_on(n) for n in FILTER_NAMES)
    with ws.read() as conn:
        rows = conn.execute(
            "SELECT c.id FROM candidate c WHERE c.batch_id = ? AND c.data IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM filter_result f WHERE f.candidate_id = c.id AND f.passed = 0) "
            + ("AND EXISTS (SELECT 1 FROM filter_result f WHERE f.candidate_id = c.id) " if any_on else "")
            + "ORDER BY c.id", (batch_id,)).fetchall()
    return [r[0] for r in rows]


def stored_report(ws: Workspace, batch_id: int) -> FilterReport | None:
    """The batch's saved marks as a FilterReport (what apply_filters returned); None when never filtered."""
    config = stored_config(ws, batch_id)
    if config is None:
        return None
    results = stored_results(ws, batch_id)
    with ws.read() as conn:
        total = conn.execute("SELECT COUNT(*) FROM candidate WHERE batch_id = ?", (batch_id,)).fetchone()[0]
    outcomes = [o for cid in sorted(results) for o in results[cid]]
    first_failure = {cid: next(o for o in os if not o.passed) for cid, os in sorted(results.items())
                     if any(not o.passed for o in os)}
    failed_by = {name: sum(not o.passed and o.filter == name for o in outcomes)
                 for name in FILTER_NAMES if config.is_on(name)}
    return FilterReport(outcomes, total, passing_ids(ws, batch_id) or [], failed_by, first_failure, config)

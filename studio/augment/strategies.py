"""The six augmentation strategies: what a work unit is, the prompt it sends, how its answer becomes rows.

A batch is a numbered sequence of work units. Unit `idx` of a batch is a pure function of the batch's
frozen seed pool, its options and its random seed, so a resumed batch rebuilds exactly the units it
had not finished. Four strategies ask a teacher (one chat conversation per unit); two run offline
(nlpaug perturbations and entity swapping: one seed per unit, no teacher).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from studio.augment import schemas
from studio.data.formats import FORMATS, SeedFormat
from studio.errors import GenerationError
from studio.teachers.base import ChatMessages, JsonSchema

# Answer styles offered for response-pair expansion; users may add their own as "name: description".
STYLES: dict[str, str] = {
    "formal": "polite, precise and professional",
    "casual": "relaxed and friendly, like a helpful colleague",
    "empathetic": "warm; acknowledges how the person feels before helping",
    "concise": "as short as possible while still complete",
    "step-by-step": "numbered steps the reader can follow",
}
DEFAULT_STYLES = ("formal", "casual", "concise")


@dataclass(frozen=True)
class Example:
    """One row a unit works from: a human seed, or (few-shot only) an accepted synthetic row."""

    ref: int
    """The seed id, or the candidate id when `synthetic`."""
    format: SeedFormat
    data: dict[str, Any]
    synthetic: bool = False


@dataclass
class StrategyOptions:
    """Every knob of every strategy; each strategy reads the ones it needs. Stored with the batch."""

    n: int = 5
    """Phrasings per seed (instruction expansion) or new examples per teacher call (few-shot)."""
    styles: list[str] = field(default_factory=lambda: list(DEFAULT_STYLES))
    """Response expansion: style names from STYLES, or custom "name: description"."""
    k: int = 5
    """Few-shot: examples shown per call."""
    include_synthetic: bool = False
    """Few-shot: also show accepted synthetic rows (at most half of the examples)."""
    diversity_hint: str = ""
    augmenter: str = "keyboard"
    copies: int = 2
    """nlpaug / entity swap: variants made from each seed."""
    strength: float = 0.1
    locale: str = "en_US"
    user_values: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StrategyOptions:
        data = dict(data or {})
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})

    def check(self) -> None:
        if not 1 <= self.n <= 50:
            raise GenerationError(f"Rows per call must be between 1 and 50 (got {self.n}).")
        if not 1 <= self.k <= 20:
            raise GenerationError(f"Examples per call must be between 1 and 20 (got {self.k}).")
        if not 1 <= self.copies <= 20:
            raise GenerationError(f"Variants per seed must be between 1 and 20 (got {self.copies}).")
        if not 0 < self.strength <= 1:
            raise GenerationError(f"Strength must be above 0 and at most 1 (got {self.strength}).")
        if len(self.diversity_hint) > 2000:
            raise GenerationError("The diversity hint is too long (over 2,000 characters); shorten it.")


@dataclass
class Row:
    """One candidate row as a strategy produced it, before it is stored."""

    format: SeedFormat
    data: dict[str, Any] | None
    parse_status: str = "ok"
    """ok | partial (some of the answer was unusable) | failed (nothing usable; data is None)."""
    parse_error: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    raw_output: str = ""

    @property
    def usable(self) -> bool:
        return self.data is not None


def failed_row(fmt: SeedFormat, raw: str, error: str, **meta: Any) -> Row:
    return Row(fmt, None, "failed", error or "The answer could not be parsed.", dict(meta), raw)


# --- seed views: one vocabulary for templates, whatever the format --------------------------------


def seed_view(ex: Example) -> dict[str, Any]:
    """instruction/input/output, prompt/completion, user/assistant, text/label, filled for any format."""
    d = ex.data
    view: dict[str, Any] = {"id": ex.ref, "format": str(ex.format), "instruction": "", "input": "", "output": "",
                            "text": "", "label": ""}
    if ex.format == SeedFormat.ALPACA:
        view.update(instruction=d["instruction"], input=d.get("input", ""), output=d["output"])
    elif ex.format == SeedFormat.PROMPT_COMPLETION:
        view.update(instruction=d["prompt"], output=d["completion"])
    elif ex.format == SeedFormat.MESSAGES:
        msgs = d["messages"]
        view.update(instruction=next((m["content"] for m in msgs if m["role"] == "user"), ""),
                    output=next((m["content"] for m in msgs if m["role"] == "assistant"), ""))
    elif ex.format == SeedFormat.CLASSIFICATION:
        view.update(instruction=d["text"], text=d["text"], label=d["label"])
    elif ex.format == SeedFormat.NER:
        view.update(instruction=" ".join(d["tokens"]), text=" ".join(d["tokens"]))
    prompt = view["instruction"] + ("\n\n" + view["input"] if view["input"] else "")
    view.update(prompt=prompt, completion=view["output"], user=prompt, assistant=view["output"])
    return view


def with_instruction(ex: Example, instruction: str) -> dict[str, Any]:
    """The seed's record with its request replaced (the answer still fits: same intent)."""
    d = dict(ex.data)
    if ex.format == SeedFormat.ALPACA:
        d["instruction"] = instruction
    elif ex.format == SeedFormat.PROMPT_COMPLETION:
        d["prompt"] = instruction
    elif ex.format == SeedFormat.MESSAGES:
        msgs = [dict(m) for m in d["messages"]]
        first_user = next(i for i, m in enumerate(msgs) if m["role"] == "user")
        msgs[first_user]["content"] = instruction
        d["messages"] = msgs
    elif ex.format == SeedFormat.CLASSIFICATION:
        d["text"] = instruction
    return d


def with_answer(ex: Example, answer: str) -> dict[str, Any]:
    """The seed's record with its answer replaced. A conversation keeps only its first exchange,
    because later turns were written in reply to the original answer."""
    d = dict(ex.data)
    if ex.format == SeedFormat.ALPACA:
        d["output"] = answer
    elif ex.format == SeedFormat.PROMPT_COMPLETION:
        d["completion"] = answer
    elif ex.format == SeedFormat.MESSAGES:
        msgs = d["messages"]
        first_user = next(i for i, m in enumerate(msgs) if m["role"] == "user")
        d["messages"] = [dict(m) for m in msgs[: first_user + 1]] + [{"role": "assistant", "content": answer}]
    return d


def _families(examples: list[Example]) -> set[str]:
    return {FORMATS[e.format].family for e in examples}


# --- the strategies --------------------------------------------------------------------------------


class Strategy:
    name: str = ""
    """CLI name, e.g. instruction-expansion."""
    template_name: str = ""
    """Prompt file under prompts/ and the prompt_version.strategy key; empty for offline strategies."""
    title: str = ""
    help: str = ""
    uses_teacher: bool = True
    uses_plan: bool = False
    """Whether a diversity plan's draw (topic, persona, …) steers this strategy's units (studio.augment.plan)."""
    variables: frozenset[str] = frozenset()
    formats: tuple[SeedFormat, ...] = (SeedFormat.ALPACA, SeedFormat.PROMPT_COMPLETION, SeedFormat.MESSAGES)

    def check_seeds(self, examples: list[Example], options: StrategyOptions) -> None:
        if not examples:
            raise GenerationError("This project has no seeds yet. Import seeds on the Task & Seeds tab first.")
        unfit = Counter(str(e.format) for e in examples if e.format not in self.formats)
        if len(unfit) and sum(unfit.values()) == len(examples):
            have = ", ".join(f"{n} {f}" for f, n in unfit.items())
            want = ", ".join(FORMATS[f].title for f in self.formats)
            raise GenerationError(f"{self.title} needs seeds in one of these formats: {want}. This project has "
                                  f"{have} seeds. {self.suggestion()}")

    def suggestion(self) -> str:
        return "Pick another strategy."

    def usable(self, examples: list[Example], options: StrategyOptions) -> list[Example]:
        """The seeds this strategy can work from (the batch's frozen pool)."""
        return [e for e in examples if e.format in self.formats]

    def expected_rows(self, options: StrategyOptions) -> int:
        return 1

    def unit_examples(self, idx: int, pool: list[Example], options: StrategyOptions, rng_seed: int,
                      synthetic: list[Example] | None = None) -> list[Example]:
        """The examples unit `idx` works on. Default: one seed, in a fresh shuffle of the pool per pass."""
        epoch, pos = divmod(idx, len(pool))
        order = random.Random(f"{rng_seed}:{epoch}").sample(range(len(pool)), len(pool))
        return [pool[order[pos]]]

    def context(self, examples: list[Example], options: StrategyOptions, task: str) -> dict[str, Any]:
        return {"task": task, "seed": seed_view(examples[0]), "n": options.n,
                "diversity_hint": options.diversity_hint, "plan": []}

    def sample_context(self, options: StrategyOptions, task: str = "Answer customer questions.") -> dict[str, Any]:
        """A realistic context to test-render an edited template against."""
        ex = Example(0, SeedFormat.ALPACA, {"instruction": "Summarise the text.", "input": "A long text.",
                                            "output": "A summary."})
        return {**self.context([ex, ex], options, task),
                "plan": [{"topic": "refunds", "persona": "a student"}, {"topic": "billing", "persona": "an expert"}]}

    def conversation(self, prompt: str) -> ChatMessages:
        return [{"role": "user", "content": prompt}]

    def answer_schema(self, examples: list[Example], options: StrategyOptions, max_new_tokens: int,
                      draws: Sequence[dict[str, str]] = ()) -> JsonSchema | None:
        """The JSON schema of this strategy's answer, sized to `max_new_tokens`; None: free text. `draws`:
        the diversity plan's draw for each row the unit asks for (strategies that use a plan)."""
        return None

    def parse(self, text: str, examples: list[Example], options: StrategyOptions) -> list[Row]:
        raise NotImplementedError

    def run_offline(self, examples: list[Example], options: StrategyOptions, unit_seed: int) -> list[Row]:
        raise NotImplementedError


class InstructionExpansion(Strategy):
    name = "instruction-expansion"
    template_name = "instruction_expansion"
    title = "Instruction expansion"
    uses_plan = True
    help = "One seed request becomes several phrasings of the same request; the seed's answer is kept."
    variables = frozenset({"task", "seed", "n", "diversity_hint", "plan"})
    formats = (SeedFormat.ALPACA, SeedFormat.PROMPT_COMPLETION, SeedFormat.MESSAGES, SeedFormat.CLASSIFICATION)

    def suggestion(self) -> str:
        return "For NER seeds use entity swapping or nlpaug."

    def expected_rows(self, options: StrategyOptions) -> int:
        return options.n

    def answer_schema(self, examples: list[Example], options: StrategyOptions, max_new_tokens: int,
                      draws: Sequence[dict[str, str]] = ()) -> JsonSchema:
        return schemas.string_list(options.n, max_new_tokens, cap=schemas.like(seed_view(examples[0])["instruction"]))

    def parse(self, text: str, examples: list[Example], options: StrategyOptions) -> list[Row]:
        from studio.augment.parsing import parse_text_list

        ex = examples[0]
        original = seed_view(ex)["instruction"].strip().lower()
        parsed = parse_text_list(text, expected=options.n)
        items = [s for s in parsed.items if s.strip().lower() != original]
        if not items:
            error = parsed.error or "The answer held no new phrasing (only the original request)."
            return [failed_row(ex.format, text, error)]
        status = parsed.status if len(items) == len(parsed.items) else "partial"
        return [Row(ex.format, with_instruction(ex, s), status, parsed.error, {"variant": i + 1}, text)
                for i, s in enumerate(items)]


class InstructionRefinement(Strategy):
    name = "instruction-refinement"
    template_name = "instruction_refinement"
    title = "Instruction refinement"
    help = "A vague seed request is rewritten as a clear, specific one with the same intent."
    variables = frozenset({"task", "seed", "n", "diversity_hint", "plan"})

    def answer_schema(self, examples: list[Example], options: StrategyOptions, max_new_tokens: int,
                      draws: Sequence[dict[str, str]] = ()) -> JsonSchema:
        return schemas.keyed_texts(["instruction"], max_new_tokens,
                                   cap=schemas.like(seed_view(examples[0])["instruction"], factor=3.0))

    def parse(self, text: str, examples: list[Example], options: StrategyOptions) -> list[Row]:
        from studio.augment.parsing import parse_single_text

        ex = examples[0]
        parsed = parse_single_text(text)
        if not parsed.items:
            return [failed_row(ex.format, text, parsed.error)]
        refined = str(parsed.items[0])
        original = seed_view(ex)["instruction"]
        if refined.strip().lower() == original.strip().lower():
            return [failed_row(ex.format, text, "The teacher returned the instruction unchanged.")]
        return [Row(ex.format, with_instruction(ex, refined), parsed.status, parsed.error,
                    {"original_instruction": original}, text)]


class ResponseExpansion(Strategy):
    name = "response-expansion"
    template_name = "response_expansion"
    title = "Response-pair expansion"
    help = "One seed request gets several good answers, one per style (formal, casual, concise, …)."
    variables = frozenset({"task", "seed", "styles", "n", "diversity_hint", "plan"})

    def suggestion(self) -> str:
        return "Labels and tags have no styles: use few-shot generation, nlpaug or entity swapping."

    def styles(self, options: StrategyOptions) -> list[dict[str, str]]:
        out = []
        for item in options.styles:
            name, _, description = item.partition(":")
            name = name.strip()
            if not name:
                continue
            out.append({"name": name, "description": description.strip() or STYLES.get(name.lower(), name)})
        if not out:
            raise GenerationError("Pick at least one answer style, or type your own as 'name: description'.")
        return out

    def expected_rows(self, options: StrategyOptions) -> int:
        return len(options.styles) or 1

    def answer_schema(self, examples: list[Example], options: StrategyOptions, max_new_tokens: int,
                      draws: Sequence[dict[str, str]] = ()) -> JsonSchema:
        return schemas.keyed_texts([s["name"] for s in self.styles(options)], max_new_tokens,
                                   cap=schemas.like(seed_view(examples[0])["output"], factor=2.0, floor=160))

    def context(self, examples: list[Example], options: StrategyOptions, task: str) -> dict[str, Any]:
        return {**super().context(examples, options, task), "styles": self.styles(options)}

    def parse(self, text: str, examples: list[Example], options: StrategyOptions) -> list[Row]:
        from studio.augment.parsing import parse_styled_answers

        ex = examples[0]
        parsed = parse_styled_answers(text, [s["name"] for s in self.styles(options)])
        if not parsed.items:
            return [failed_row(ex.format, text, parsed.error)]
        return [Row(ex.format, with_answer(ex, item["answer"]), parsed.status, parsed.error,
                    {"style": item["style"]}, text) for item in parsed.items]


FEW_SHOT_FIELDS: dict[SeedFormat, tuple[str, ...]] = {
    SeedFormat.ALPACA: ("instruction", "input", "output"),
    SeedFormat.PROMPT_COMPLETION: ("prompt", "completion"),
    SeedFormat.MESSAGES: ("user", "assistant"),
    SeedFormat.CLASSIFICATION: ("text", "label"),
}

FEW_SHOT_WEIGHTS = {"output": 2.0, "completion": 2.0, "assistant": 2.0, "input": 0.7}
"""Share of the answer budget per field: answers run longer than requests; most inputs are short."""


class FewShot(Strategy):
    name = "few-shot"
    template_name = "few_shot"
    title = "Few-shot generation"
    uses_plan = True
    help = ("Shows the teacher k seeds and asks for new examples with the same logic, tone and structure, "
            "but different cases.")
    variables = frozenset({"task", "n", "examples", "fields", "labels", "diversity_hint", "plan"})
    formats = (SeedFormat.ALPACA, SeedFormat.PROMPT_COMPLETION, SeedFormat.MESSAGES, SeedFormat.CLASSIFICATION)

    def suggestion(self) -> str:
        return "For NER seeds use entity swapping: a teacher's tags rarely line up with its tokens."

    def expected_rows(self, options: StrategyOptions) -> int:
        return options.n

    def output_format(self, examples: list[Example]) -> SeedFormat:
        return Counter(e.format for e in examples).most_common(1)[0][0]

    def answer_schema(self, examples: list[Example], options: StrategyOptions, max_new_tokens: int,
                      draws: Sequence[dict[str, str]] = ()) -> JsonSchema:
        fmt = self.output_format(examples)
        fields = FEW_SHOT_FIELDS[fmt]
        context = self.context(examples, options, "")
        caps = {f: schemas.like(*(str(v[f]) for v in context["examples"]), floor=60) for f in fields}
        enums = {"label": context["labels"]} if context["labels"] else None
        # Each item starts with its draw, written by the grammar (see schemas.object_list).
        return schemas.object_list(options.n, fields, max_new_tokens, weights=FEW_SHOT_WEIGHTS, caps=caps,
                                   optional=("input",), enums=enums, leading=draws)

    def unit_examples(self, idx: int, pool: list[Example], options: StrategyOptions, rng_seed: int,
                      synthetic: list[Example] | None = None) -> list[Example]:
        rng = random.Random(f"{rng_seed}:shots:{idx}")
        k = min(options.k, len(pool) + len(synthetic or []))
        n_synthetic = min(len(synthetic or []), k // 2) if options.include_synthetic else 0
        humans = rng.sample(pool, min(len(pool), k - n_synthetic))
        extra = rng.sample(synthetic or [], n_synthetic) if n_synthetic else []
        chosen = humans + extra
        rng.shuffle(chosen)
        return chosen

    def context(self, examples: list[Example], options: StrategyOptions, task: str) -> dict[str, Any]:
        fmt = self.output_format(examples)
        labels = sorted({str(e.data["label"]) for e in examples if e.format == SeedFormat.CLASSIFICATION})
        return {"task": task, "n": options.n, "examples": [seed_view(e) for e in examples],
                "fields": list(FEW_SHOT_FIELDS[fmt]), "labels": labels, "diversity_hint": options.diversity_hint,
                "plan": []}

    def parse(self, text: str, examples: list[Example], options: StrategyOptions) -> list[Row]:
        from studio.augment.parsing import parse_pairs

        fmt = self.output_format(examples)
        fields = FEW_SHOT_FIELDS[fmt]
        parsed = parse_pairs(text, fields=fields)
        rows = []
        seen = {_norm(seed_view(e)["prompt"]) for e in examples}
        copies = 0
        for index, item in enumerate(parsed.items[: options.n]):
            record = _record_from_fields(fmt, item)
            if record is None:
                continue
            if _norm(seed_view(Example(0, fmt, record))["prompt"]) in seen:
                copies += 1  # a copied example teaches nothing new
                continue
            rows.append(Row(fmt, record, parsed.status, parsed.error, {"item": index}, text))
        if not rows:
            error = parsed.error or ("The teacher only repeated the examples." if copies else "No example parsed.")
            return [failed_row(fmt, text, error)]
        if copies:
            for row in rows:
                row.parse_status = "partial"
                row.parse_error = (row.parse_error + " " if row.parse_error else "") + \
                    f"{copies} item(s) copied an example and were dropped."
        return rows


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _record_from_fields(fmt: SeedFormat, item: dict[str, Any]) -> dict[str, Any] | None:
    def text(key: str) -> str:
        v = item.get(key, "")
        return v.strip() if isinstance(v, str) else ("" if v is None else str(v)).strip()

    if fmt == SeedFormat.ALPACA:
        rec = {"instruction": text("instruction"), "input": text("input"), "output": text("output")}
        return rec if rec["instruction"] and rec["output"] else None
    if fmt == SeedFormat.PROMPT_COMPLETION:
        rec = {"prompt": text("prompt"), "completion": text("completion")}
        return rec if rec["prompt"] and rec["completion"] else None
    if fmt == SeedFormat.MESSAGES:
        user, assistant = text("user"), text("assistant")
        if not (user and assistant):
            return None
        return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
    rec = {"text": text("text"), "label": text("label")}
    return rec if rec["text"] and rec["label"] else None


class ClassicAugmentation(Strategy):
    name = "nlpaug"
    title = "Classic augmentation (nlpaug)"
    help = ("Typos, OCR errors, swapped or dropped words and split words in the user's side of each seed, "
            "so the model copes with messy input. Answers are left untouched.")
    uses_teacher = False
    formats = tuple(SeedFormat)

    def check_seeds(self, examples: list[Example], options: StrategyOptions) -> None:
        super().check_seeds(examples, options)
        from studio.augment.classic import available_augmenters

        infos = {a.name: a for a in available_augmenters()}
        info = infos.get(options.augmenter)
        if info is None:
            raise GenerationError(f"Unknown augmenter '{options.augmenter}'. Choose one of: {', '.join(infos)}.")
        if not info.available:
            raise GenerationError(info.reason)
        if not info.keeps_tokens and all(e.format == SeedFormat.NER for e in examples):
            raise GenerationError(f"{info.title} changes the number of words, which would break the tags of NER "
                                  "seeds. Pick a character-level perturbation (keyboard, OCR, random characters, "
                                  "spelling) or use entity swapping.")

    def expected_rows(self, options: StrategyOptions) -> int:
        return options.copies

    def run_offline(self, examples: list[Example], options: StrategyOptions, unit_seed: int) -> list[Row]:
        from studio.augment.classic import augment_record

        ex = examples[0]
        try:
            records = augment_record(str(ex.format), ex.data, options.augmenter, rng_seed=unit_seed,
                                     n=options.copies, strength=options.strength)
        except GenerationError as error:
            return [failed_row(ex.format, "", str(error), augmenter=options.augmenter)]
        if not records:
            return [failed_row(ex.format, "", "The augmenter left this seed unchanged.", augmenter=options.augmenter)]
        return [Row(ex.format, r, "ok", "", {"augmenter": options.augmenter}) for r in records]


class EntitySwap(Strategy):
    name = "entity-swap"
    title = "Entity swapping"
    help = ("Replaces the named entities of NER seeds (or of text marked like [Paris](LOC)) with other values "
            "of the same type, from Faker or from your own lists. Tags stay aligned.")
    uses_teacher = False
    formats = tuple(SeedFormat)

    def check_seeds(self, examples: list[Example], options: StrategyOptions) -> None:
        super().check_seeds(examples, options)
        from studio.augment.entity_swap import require_swappable

        require_swappable([(str(e.format), e.data) for e in examples], locale=options.locale,
                          user_values=options.user_values)

    def usable(self, examples: list[Example], options: StrategyOptions) -> list[Example]:
        from studio.augment.entity_swap import is_swappable

        return [e for e in examples if is_swappable(str(e.format), e.data, user_values=options.user_values)]

    def expected_rows(self, options: StrategyOptions) -> int:
        return options.copies

    def run_offline(self, examples: list[Example], options: StrategyOptions, unit_seed: int) -> list[Row]:
        from studio.augment.entity_swap import swap_record

        ex = examples[0]
        rows: list[Row] = []
        seen = {_norm(str(ex.data))}
        for copy in range(options.copies * 3):
            if len(rows) == options.copies:
                break
            record = swap_record(str(ex.format), ex.data, rng_seed=unit_seed * 1009 + copy, locale=options.locale,
                                 user_values=options.user_values)
            if record is None or _norm(str(record)) in seen:
                continue
            seen.add(_norm(str(record)))
            rows.append(Row(ex.format, record, "ok", "", {"locale": options.locale}))
        return rows or [failed_row(ex.format, "", "No entity in this seed could be replaced.")]


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (InstructionExpansion(), InstructionRefinement(),
                                                       ResponseExpansion(), FewShot(), ClassicAugmentation(),
                                                       EntitySwap())}


def get_strategy(name: str) -> Strategy:
    key = name.strip().lower().replace("_", "-")
    if key not in STRATEGIES:
        raise GenerationError(f"Unknown strategy '{name}'. Choose one of: {', '.join(STRATEGIES)}.")
    return STRATEGIES[key]


def template_strategy(template_name: str) -> Strategy:
    return next(s for s in STRATEGIES.values() if s.template_name == template_name)

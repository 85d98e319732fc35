"""Revise a batch's generation prompt from what its reviewers found.

`feedback` gathers the reason tags, notes and edits of the batch's reviews (the newest review of each
reviewer per row). `draft_revision` asks the teacher to rewrite the prompt template with that feedback,
and checks the answer like a user's edit (it must parse, keep every variable the current template uses
and render). When there is no teacher, or it fails, or it returns something unusable, the draft is made
without it: the current template plus a marked section listing one concrete instruction per problem
the reviewers tagged, their notes and a few "instead of X write Y" pairs from their edits. The draft is
only a proposal: the user edits it, then `save_revision` stores it as the next prompt version, which
remembers the batch it learnt from.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.data.formats import SeedFormat, summary_text
from studio.errors import ReviewError, StudioError
from studio.review.verdicts import REASON_TAGS, latest_reviews
from studio.workspace import Workspace

if TYPE_CHECKING:
    from studio.augment.prompt_versions import PromptVersion
    from studio.augment.strategies import Strategy
    from studio.teachers.base import Teacher
    from studio.teachers.spec import TeacherSpec

TAG_INSTRUCTIONS = {
    "hallucination": "Only state facts that follow from the task and the examples; do not invent names, numbers "
                     "or sources.",
    "wrong tone": "Match the tone of the examples: same formality, warmth and length; no slang, no marketing "
                  "language.",
    "off-task": "Stay on the task described above: every result must be an example of that task, nothing else.",
    "format": "Follow the requested output format exactly, with nothing before or after it.",
    "unsafe": "Never write harmful, offensive, private or unsafe content; leave such a case out instead.",
    "duplicate": "Make every result clearly different from the examples and from each other; do not repeat or "
                 "lightly reword them.",
    "other": "Avoid the problems the reviewers describe in their notes below.",
}
MAX_EDITS_TO_TEACHER = 5
MAX_EDITS_IN_FALLBACK = 3
MAX_NOTES = 10
MAX_SNIPPET_CHARS = 300


@dataclass(frozen=True)
class Feedback:
    tag_counts: dict[str, int]
    """reason tag -> rows tagged with it, most frequent first."""
    notes: list[str]
    edits: list[tuple[str, str]]
    """(before, after) texts of edited rows, newest first: the part the reviewer changed."""
    reviewed: int = 0
    rejected: int = 0

    @property
    def empty(self) -> bool:
        return not (self.tag_counts or self.notes or self.edits)


@dataclass(frozen=True)
class RevisionDraft:
    template: str
    rationale: str
    from_teacher: bool
    base_version_id: int | None
    feedback: Feedback | None = field(default=None, compare=False)


def _clip(text: str, limit: int = MAX_SNIPPET_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _changed_part(fmt: SeedFormat, before: dict[str, Any], after: dict[str, Any]) -> tuple[str, str]:
    """What the reviewer changed: the prompt, the answer, or both (joined with ' → ')."""
    (p0, a0), (p1, a1) = summary_text(fmt, before), summary_text(fmt, after)
    if p0 != p1 and a0 == a1:
        return _clip(p0), _clip(p1)
    if a0 != a1 and p0 == p1:
        return _clip(a0), _clip(a1)
    return _clip(f"{p0} → {a0}"), _clip(f"{p1} → {a1}")


def feedback(ws: Workspace, batch_id: int) -> Feedback:
    """Reason-tag counts, notes and edits from the batch's reviews (each reviewer's newest verdict per row)."""
    with ws.read() as conn:
        reviews = latest_reviews(conn, batch_id)
        originals = {r["id"]: (SeedFormat(r["format"]), json.loads(r["data"])) for r in conn.execute(
            "SELECT id, format, data FROM candidate WHERE batch_id=? AND data IS NOT NULL", (batch_id,))}
    tags: Counter[str] = Counter()
    notes: list[str] = []
    edits: list[tuple[str, str]] = []
    for review in reviews:
        tags.update(review.reason_tags)
        if review.note and review.note not in notes:
            notes.append(review.note)
    for review in sorted(reviews, key=lambda r: -r.id):
        if review.verdict == "edit" and review.edited_data and review.candidate_id in originals:
            fmt, before = originals[review.candidate_id]
            edits.append(_changed_part(fmt, before, review.edited_data))
    order = {t: i for i, t in enumerate(REASON_TAGS)}
    counts = dict(sorted(tags.items(), key=lambda kv: (-kv[1], order.get(kv[0], 99))))
    return Feedback(counts, notes, edits, len({r.candidate_id for r in reviews}),
                    len({r.candidate_id for r in reviews if r.verdict == "reject"}))


# --- drafting --------------------------------------------------------------------------------------


def _strategy_and_base(ws: Workspace, batch_id: int) -> tuple[Any, Strategy, PromptVersion]:
    from studio.augment.prompt_versions import get_version, latest
    from studio.augment.strategies import get_strategy
    from studio.review.sampling import require_batch

    batch = require_batch(ws, batch_id)
    strategy = get_strategy(batch.strategy)
    if not strategy.uses_teacher:
        raise ReviewError(f"Batch #{batch_id} was made by {strategy.title}, which uses no prompt: there is no "
                          "template to revise. Change its settings on the Generate tab instead.")
    if batch.prompt_version_id:
        base = get_version(ws, batch.prompt_version_id)
    else:  # a batch without a recorded version: the project's current one (never written here)
        base = latest(ws, batch.project_id, strategy.name, create=False)
    return batch, strategy, base


def _variables(source: str) -> set[str]:
    """The context variables a template reads, with the attributes it reads of them (seed, seed.instruction)."""
    from jinja2 import Environment, TemplateSyntaxError, meta, nodes

    try:
        tree = Environment().parse(source)
    except TemplateSyntaxError:
        return set()
    names = set(meta.find_undeclared_variables(tree))
    attrs = {f"{n.node.name}.{n.attr}" for n in tree.find_all(nodes.Getattr)
             if isinstance(n.node, nodes.Name) and n.node.name in names}
    return names | attrs


def check_revision(strategy: Strategy, current: str, revised: str) -> None:
    """TemplateError/ReviewError unless `revised` is a valid template that keeps every variable of `current`."""
    from studio.augment.strategies import StrategyOptions
    from studio.augment.templates import check_template

    check_template(revised, set(strategy.variables), strategy.sample_context(StrategyOptions()))
    missing = sorted(_variables(current) - _variables(revised))
    if missing:
        raise ReviewError("The revised template no longer uses " + ", ".join("{{ " + v + " }}" for v in missing)
                          + ".")


def _escape(text: str) -> str:
    """Reviewer text inside a Jinja template: break up delimiters so it stays literal text."""
    return re.sub(r"([{])([{%#])", r"\1 \2", text)


def fallback_template(current: str, batch_id: int, fb: Feedback) -> str:
    """The current template plus a marked section of concrete instructions from the reviews."""
    lines = [f"Reviewers of batch #{batch_id} found these problems; avoid them:"]
    for tag in fb.tag_counts:
        if tag == "other" and not fb.notes:
            continue
        lines.append(f"- {TAG_INSTRUCTIONS.get(tag, TAG_INSTRUCTIONS['other'])}")
    if fb.notes:
        lines.append("Reviewers' notes:")
        lines.extend(f"- {_clip(note)}" for note in fb.notes[:MAX_NOTES])
    if fb.edits:
        lines.append("Corrections reviewers made:")
        lines.extend(f'- Instead of "{before}" write "{after}".' for before, after in fb.edits[:MAX_EDITS_IN_FALLBACK])
    return current.rstrip() + "\n\n" + _escape("\n".join(lines)) + "\n"


def revision_request(current: str, fb: Feedback, batch_id: int) -> list[dict[str, str]]:
    """The conversation asking the teacher to rewrite the template."""
    counts = "\n".join(f"- {tag}: {n} row{'s' if n != 1 else ''}" for tag, n in fb.tag_counts.items()) or "- (none)"
    notes = "\n".join(f"- {_clip(n)}" for n in fb.notes[:MAX_NOTES]) or "- (none)"
    edits = "\n".join(f"- before: {b}\n  after: {a}" for b, a in fb.edits[:MAX_EDITS_TO_TEACHER]) or "- (none)"
    user = (
        "You improve prompt templates that tell a language model how to write training data.\n"
        f"People reviewed rows generated with the template below (batch #{batch_id}) and found problems.\n\n"
        f"TEMPLATE (Jinja):\n<<<\n{current.strip()}\n>>>\n\n"
        f"Problems the reviewers tagged (rows per tag):\n{counts}\n\n"
        f"Reviewers' notes:\n{notes}\n\n"
        f"Rows the reviewers corrected:\n{edits}\n\n"
        "Rewrite the template so that these problems do not happen again. Keep every {{ variable }} and every "
        "{% ... %} block it uses, keep the output format it asks for, and change only what the feedback calls "
        "for. Answer with the revised template only, without explanations and without code fences."
    )
    return [{"role": "user", "content": user}]


def _clean_answer(text: str) -> str:
    text = (text or "").strip()
    fenced = re.search(r"```[\w-]*\n(.*?)(?:\n```|\Z)", text, re.S)
    if fenced:
        text = fenced.group(1)
    text = re.sub(r"^\s*<<<\s*\n|\n\s*>>>\s*$", "", text.strip())
    return text.strip() + "\n"


def draft_revision(ws: Workspace, batch_id: int, *, spec: TeacherSpec | None = None, api_key: str | None = None,
                   teacher: Teacher | None = None) -> RevisionDraft:
    """A revised template for the batch's strategy (not saved). Asks the teacher when one is given."""
    _, strategy, base = _strategy_and_base(ws, batch_id)
    fb = feedback(ws, batch_id)
    if fb.empty:
        raise ReviewError(f"The reviews of batch #{batch_id} record no reason tags, notes or edits, so there is "
                          "nothing to revise from. Tag the problems of rejected rows first.")
    base_id = base.id or None
    why_not = "no teacher was given"
    if teacher is not None or spec is not None:
        try:
            if teacher is None:
                from studio.teachers.spec import build_teacher

                assert spec is not None
                teacher = build_teacher(ws, spec, api_key=api_key)
            from studio.teachers.base import GenerationParams

            answer = teacher.generate([revision_request(base.template, fb, batch_id)],
                                      GenerationParams(max_new_tokens=2048, temperature=0.2, top_p=0.95, seed=0))[0]
            revised = _clean_answer(answer)
            check_revision(strategy, base.template, revised)
            if revised.strip() == base.template.strip():
                raise ReviewError("it returned the template unchanged")
            return RevisionDraft(revised, f"The teacher rewrote the template from the reviews of batch #{batch_id} "
                                 f"({_summary(fb)}).", True, base_id, fb)
        except StudioError as error:
            why_not = f"the teacher's answer could not be used: {_clip(str(error), 200)}"
        except Exception as error:  # a local model fails in many ways (memory, CUDA): still draft
            why_not = f"the teacher failed: {type(error).__name__}: {_clip(str(error), 200)}"
    template = fallback_template(base.template, batch_id, fb)
    check_revision(strategy, base.template, template)
    return RevisionDraft(template, f"Drafted without the teacher ({why_not}): the current template plus "
                         f"instructions from the reviews of batch #{batch_id} ({_summary(fb)}).", False, base_id, fb)


def _summary(fb: Feedback) -> str:
    parts = [", ".join(f"{tag} ×{n}" for tag, n in fb.tag_counts.items())] if fb.tag_counts else []
    if fb.notes:
        parts.append(f"{len(fb.notes)} note{'s' if len(fb.notes) != 1 else ''}")
    if fb.edits:
        parts.append(f"{len(fb.edits)} edit{'s' if len(fb.edits) != 1 else ''}")
    return "; ".join(parts)


def save_revision(ws: Workspace, batch_id: int, template: str, note: str = "") -> PromptVersion:
    """Store the (user-edited) draft as the strategy's next prompt version, remembering the batch."""
    from studio.augment.prompt_versions import get_version, latest, save_version

    batch, strategy, _ = _strategy_and_base(ws, batch_id)
    current = latest(ws, batch.project_id, strategy.name, create=False)
    if template.strip() == current.template.strip():
        raise ReviewError("The revised template is the same as the current prompt version; change it before "
                          "saving.")
    version = save_version(ws, batch.project_id, strategy.name, template,
                           note=note.strip() or f"revised after the review of batch #{batch_id}",
                           parent_id=batch.prompt_version_id or None)
    # save_version owns its transaction; the link to the batch is written right after it.
    with ws.write() as conn:
        conn.execute("UPDATE prompt_version SET source_batch_id=? WHERE id=?", (batch_id, version.id))
    return get_version(ws, version.id)

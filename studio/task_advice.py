"""Advice on a task description: is it specific enough to fine-tune for, and is fine-tuning the right tool?

Plain rules, so a person can see why the advice says what it says. Fine-tuning teaches a behaviour
(format, tone, a narrow skill); it is a poor way to teach facts that change or that must be cited,
where retrieval (RAG) fits better.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Level = Literal["good", "tip", "warning"]


@dataclass(frozen=True)
class Advice:
    level: Level
    message: str


# Words that say what the model should *do*: a concrete, checkable action.
_ACTIONS = re.compile(
    r"\b(writ\w*|summari[sz]\w*|classif\w*|categori[sz]\w*|extract\w*|translat\w*|answer\w*|generat\w*|"
    r"convert\w*|rewrit\w*|draft\w*|tag\w*|label\w*|detect\w*|reply|replies|respond\w*|explain\w*|"
    r"format\w*|correct\w*|fix\w*|turn\w*|produc\w*|creat\w*|paraphras\w*|simplif\w*|grad\w*|score\w*|"
    r"recommend\w*|map\w*|pars\w*|compos\w*|review\w*|critiqu\w*|triag\w*|rout\w*|suggest\w*)\b",
    re.IGNORECASE)
# Phrases that promise a general improvement instead of a task.
_VAGUE = re.compile(
    r"\b(better|improve\w*|smarter|good at|great at|general\w*|anything|everything|all kinds|any task|"
    r"all tasks|more helpful|more capable|like chatgpt|like gpt|help with)\b", re.IGNORECASE)
# Signals that the answers depend on facts that change or must be traced to a source.
_FRESH = re.compile(
    r"\b(latest|today'?s?|current(ly)?|up[- ]to[- ]date|real[- ]time|daily|this week|news|prices?|stock|"
    r"weather|schedules?|inventory|availability|exchange rates?|live data)\b", re.IGNORECASE)
_CITED = re.compile(
    r"\b(cit(e|es|ing|ation|ations)|sources?|references?|quot(e|ing) (the|our)|according to|"
    r"our (docs|documents|documentation|wiki|knowledge base|policies|policy|manuals?|handbook|faq)|"
    r"knowledge base|internal documents?)\b", re.IGNORECASE)
_OUTPUT_FORMAT = re.compile(
    r"\b(json|yaml|csv|markdown|table|bullet\w*|list|email|sql|python|code|functions?|one sentence|"
    r"\d+ words|paragraphs?|headline|tweet|label|tags?|summary|short|concise|formal|friendly|tone)\b",
    re.IGNORECASE)
_AUDIENCE = re.compile(
    r"\b(for (our|the|a|an)?\s*\w+|customers?|users?|patients?|students?|engineers?|developers?|"
    r"clients?|beginners?|experts?|children|kids|managers?|analysts?)\b", re.IGNORECASE)

EXAMPLE_VAGUE = "better at coding"
EXAMPLE_SPECIFIC = "writing Python functions for pandas dataframes"


def advise(description: str) -> list[Advice]:
    """Advice for a task description, most important first. Empty text gets a starting hint."""
    text = " ".join((description or "").split())
    words = re.findall(r"[\w'-]+", text)
    if not words:
        return [Advice("tip", f"Describe the one task the model should get good at. Not "
                              f"“{EXAMPLE_VAGUE}” but “{EXAMPLE_SPECIFIC}”: what goes in, what should "
                              "come out, for whom.")]
    out: list[Advice] = []
    has_action = bool(_ACTIONS.search(text))
    vague = _VAGUE.search(text)
    if (vague and not has_action) or len(words) < 3:
        said = f"“{vague.group(0)}” " if vague else ""
        out.append(Advice("warning", f"Too vague to fine-tune for: {said}does not say what the model should "
                                     f"do. Name one concrete task, like “{EXAMPLE_SPECIFIC}” instead of "
                                     f"“{EXAMPLE_VAGUE}”."))
    elif not has_action:
        out.append(Advice("tip", "Say what the model should do with the input, with a verb: write, "
                                 "summarise, classify, extract, answer, translate, rewrite..."))

    fresh, cited = _FRESH.search(text), _CITED.search(text)
    if fresh or cited:
        why = []
        if fresh:
            why.append(f"the answers depend on facts that change (“{fresh.group(0)}”)")
        if cited:
            why.append(f"the answers must come from or point to sources (“{cited.group(0)}”)")
        out.append(Advice("warning", "Retrieval (RAG) fits better than fine-tuning here: " + " and ".join(why)
                          + ". A fine-tuned model freezes what it learned and cannot cite where it came "
                            "from; give the model the documents at question time instead. Fine-tune "
                            "only for the style or format of the answers."))

    if has_action and not (out and out[0].level == "warning"):
        missing = []
        if not _OUTPUT_FORMAT.search(text):
            missing.append("the shape of a good answer (format, length, tone)")
        if not _AUDIENCE.search(text):
            missing.append("who the answers are for")
        if len(words) < 6:
            missing.append("what the input looks like")
        if missing:
            out.append(Advice("tip", "Specific enough to start. To sharpen it, add " + "; ".join(missing)
                              + "."))
        else:
            out.append(Advice("good", "Specific: a task the seeds can show and a reviewer can check."))
    return out


def advice_markdown(description: str) -> str:
    icons = {"good": "✅", "tip": "💡", "warning": "⚠️"}
    return "\n\n".join(f"{icons[a.level]} {a.message}" for a in advise(description))

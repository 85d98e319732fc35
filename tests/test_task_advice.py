"""Task advice: vague vs specific, and when retrieval fits better than fine-tuning."""

from __future__ import annotations

import pytest

from studio.task_advice import EXAMPLE_SPECIFIC, EXAMPLE_VAGUE, advise


def levels(text: str) -> list[str]:
    return [a.level for a in advise(text)]


def test_the_brief_examples() -> None:
    vague = advise(EXAMPLE_VAGUE)
    assert vague[0].level == "warning" and "vague" in vague[0].message.lower()
    assert levels(EXAMPLE_SPECIFIC) == ["good"]


@pytest.mark.parametrize("text", ["Make the model smarter", "improve it", "be more helpful in general", "coding"])
def test_vague_descriptions_are_flagged(text) -> None:
    assert advise(text)[0].level == "warning"


@pytest.mark.parametrize("text", [
    "Answer questions about today's stock prices for our traders",
    "Summarise the latest news for analysts",
    "Answer employee questions from our policy documents and cite the source",
])
def test_rag_is_recommended_for_changing_or_cited_facts(text) -> None:
    assert any("Retrieval (RAG)" in a.message for a in advise(text))


def test_specific_task_without_rag_signals_gets_no_rag_warning() -> None:
    advice = advise("Write short friendly replies to customer emails about late deliveries")
    assert not any("RAG" in a.message for a in advice)
    assert advice[-1].level in ("good", "tip")


def test_empty_description_gets_a_starting_hint() -> None:
    (hint,) = advise("   ")
    assert hint.level == "tip" and EXAMPLE_SPECIFIC in hint.message

"""Parsing teacher replies: real-looking outputs from tiny and large models, garbage, and fuzzing."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.augment.parsing import (
    MAX_CHARS,
    Parsed,
    parse_pairs,
    parse_single_text,
    parse_styled_answers,
    parse_text_list,
)

ALPACA = ("instruction", "input", "output")
STYLES = ["formal", "casual", "concise"]
GARBAGE = ["asdf qwer", "", "```", "   \n\t ", "```json\n```", "<|im_end|>"]


def check(parsed: Parsed, status: str) -> Parsed:
    assert parsed.status == status, parsed
    assert bool(parsed.error) == (status != "ok"), "an error is given exactly when the status is not ok"
    assert (parsed.items == []) == (status == "failed")
    return parsed


def check_garbage(parsed: Parsed, raw: str) -> None:
    """Failed, and the audit trail shows the raw reply (or says it was empty)."""
    check(parsed, "failed")
    if raw.strip():
        assert repr(" ".join(raw.split())) in parsed.error, parsed.error
    else:
        assert parsed.error == "the reply was empty"


# ----------------------------------------------------------------------------------------------------
# parse_text_list

GPT_FENCED_ARRAY = """Sure! Here are 3 variations:

```json
[
  "How do I reset my password?",
  "Can you walk me through resetting my password?",
  "What's the process for changing a forgotten password?"
]
```

I hope this helps!"""

LLAMA_BOLD_LABELS = """Here are three different ways to ask the same question:

**Variation 1:** "Could you tell me how to reset my password?"
**Variation 2:** "What's the process for resetting my password?" (more casual)
**Variation 3:** "Password reset - how do I do it?"

Each variation keeps the original meaning while changing the tone."""

TINY_MODEL_RAMBLING = """Here are 5 variations of the question:

1. How do I reset my password?
2. How can I reset my password?
3. How do I reset my password?
4. How do I reset my password?
5. How do I reset my password?
6. How do I reset my password?
7."""

PARAGRAPHS = """How do I reset my password?

What steps should I follow to reset the password on my account?

I forgot my password. Can you help me change it?"""


def test_plain_json_array() -> None:
    parsed = check(parse_text_list('["Where is my order?", "Has my package shipped yet?"]'), "ok")
    assert parsed.items == ["Where is my order?", "Has my package shipped yet?"]


def test_gpt_json_in_fence_with_chatter() -> None:
    parsed = check(parse_text_list(GPT_FENCED_ARRAY, expected=3), "ok")
    assert parsed.items[1] == "Can you walk me through resetting my password?"
    assert len(parsed.items) == 3


def test_json_object_holding_the_array_under_any_key() -> None:
    text = '{"rephrasings": ["Where is my order?", "Has my package shipped?", "When will my parcel arrive?"]}'
    assert check(parse_text_list(text, expected=3), "ok").items[2] == "When will my parcel arrive?"


def test_json_array_of_objects_gives_their_text() -> None:
    text = '[{"variation": "Where is my order?"}, {"text": "Has my package shipped?"}]'
    assert check(parse_text_list(text), "ok").items == ["Where is my order?", "Has my package shipped?"]


def test_truncated_json_array_is_salvaged() -> None:
    text = '```json\n["Where is my order right now?", "Has my package shipped yet?", "When will my par'
    parsed = check(parse_text_list(text, expected=3), "partial")
    assert parsed.items == ["Where is my order right now?", "Has my package shipped yet?"]
    assert "cut off" in parsed.error and "expected 3 items, got 2" in parsed.error


def test_llama_bold_labels_quotes_and_comments_are_stripped() -> None:
    parsed = check(parse_text_list(LLAMA_BOLD_LABELS, expected=3), "ok")
    assert parsed.items == [
        "Could you tell me how to reset my password?",
        "What's the process for resetting my password?",
        "Password reset - how do I do it?",
    ]


def test_tiny_model_repeats_are_deduplicated() -> None:
    parsed = check(parse_text_list(TINY_MODEL_RAMBLING, expected=5), "partial")
    assert parsed.items == ["How do I reset my password?", "How can I reset my password?"]
    assert "duplicate" in parsed.error and "expected 5 items, got 2" in parsed.error


def test_dedupe_ignores_case_and_whitespace() -> None:
    parsed = check(parse_text_list("- Where is my order?\n- where  is my ORDER?\n- Track my parcel"), "partial")
    assert parsed.items == ["Where is my order?", "Track my parcel"]


@pytest.mark.parametrize("text", [
    "1. Where is my order?\n2. Has my package shipped?\n3. When does my parcel arrive?",
    "1) Where is my order?\n2) Has my package shipped?\n3) When does my parcel arrive?",
    "(1) Where is my order?\n(2) Has my package shipped?\n(3) When does my parcel arrive?",
    "- Where is my order?\n- Has my package shipped?\n- When does my parcel arrive?",
    "* Where is my order?\n* Has my package shipped?\n* When does my parcel arrive?",
    "• Where is my order?\n• Has my package shipped?\n• When does my parcel arrive?",
    "Variation 1: Where is my order?\nVariation 2: Has my package shipped?\nVariation 3: When does my parcel arrive?",
    "1. Where is my order? 2. Has my package shipped? 3. When does my parcel arrive?",
    "Where is my order?\nHas my package shipped?\nWhen does my parcel arrive?",
    "Where is my order?\n\nHas my package shipped?\n\nWhen does my parcel arrive?",
    "Okay, here you go:\n1. **Where is my order?**\n2. **Has my package shipped?**\n3. **When does my parcel arrive?**",
    '- "Where is my order?"\n- “Has my package shipped?”\n- \'When does my parcel arrive?\'',
])
def test_list_shapes(text: str) -> None:
    parsed = check(parse_text_list(text, expected=3), "ok")
    assert parsed.items == ["Where is my order?", "Has my package shipped?", "When does my parcel arrive?"]


def test_paragraphs_after_a_preamble() -> None:
    parsed = check(parse_text_list("Of course! Here they are:\n\n" + PARAGRAPHS + "\n\nLet me know if you need more."),
                   "ok")
    assert len(parsed.items) == 3 and parsed.items[0] == "How do I reset my password?"


def test_bold_lead_labels_and_notes_under_items() -> None:
    text = ("1. **More formal:** Could you please explain how I can reset my password?\n"
            "   Explanation: uses polite phrasing.\n"
            "2. **Shorter:** Password reset steps?\n"
            "   (drops the pleasantries)")
    parsed = check(parse_text_list(text, expected=2), "ok")
    assert parsed.items == ["Could you please explain how I can reset my password?", "Password reset steps?"]


def test_indented_sub_bullets_are_notes_not_items() -> None:
    text = ("1. Where is my order?\n   - More direct\n   - Shorter\n"
            "2. Has my package shipped yet?\n   - Asks about shipping")
    parsed = check(parse_text_list(text), "ok")
    assert parsed.items == ["Where is my order?", "Has my package shipped yet?"]


def test_extra_items_are_cut_to_expected_and_short_ones_dropped() -> None:
    text = "1. Where is my order?\n2. ok\n3. Has my package shipped?\n4. When does it arrive?\n5. Is it lost?"
    parsed = check(parse_text_list(text, expected=2), "partial")
    assert parsed.items == ["Where is my order?", "Has my package shipped?"]
    assert "too-short" in parsed.error


def test_apostrophes_are_not_quotes() -> None:
    parsed = check(parse_text_list("- 'What's my order status?'\n- Where's my parcel?"), "ok")
    assert parsed.items == ["What's my order status?", "Where's my parcel?"]


def test_reasoning_and_chat_tokens_are_removed() -> None:
    text = ("<think>The user wants two rephrasings. Keep the meaning.</think>\n"
            '["Where is my order?", "Has my package shipped?"]<|im_end|>\n<|im_start|>user\nthanks')
    assert check(parse_text_list(text), "ok").items == ["Where is my order?", "Has my package shipped?"]


def test_a_model_that_ran_out_of_tokens_while_thinking_failed() -> None:
    parsed = check(parse_text_list("<think>Okay, so the user wants me to rephrase the question. Let me"), "failed")
    assert "no answer" in parsed.error


def test_brackets_inside_a_prose_list_are_not_taken_as_the_answer() -> None:
    text = '1. Sort the list ["b", "a"] alphabetically\n2. Put ["b", "a"] in alphabetical order'
    parsed = check(parse_text_list(text), "ok")
    assert parsed.items[0] == 'Sort the list ["b", "a"] alphabetically'


def test_inline_numbers_that_are_not_a_sequence_stay_one_line() -> None:
    parsed = check(parse_text_list("1. Costs 5. 2. Bakes fast\n2. Another item here"), "ok")
    assert parsed.items == ["Costs 5. 2. Bakes fast", "Another item here"]


def test_single_line_is_a_list_of_one_only_when_one_was_asked_for() -> None:
    check(parse_text_list("Where is my order?"), "failed")
    assert check(parse_text_list("Where is my order?", expected=1), "ok").items == ["Where is my order?"]


def test_stray_prose_in_a_list_makes_it_partial() -> None:
    text = "1. Where is my order?\n2. Has my package shipped?\n\nThe weather is nice in Lisbon today."
    parsed = check(parse_text_list(text), "partial")
    assert parsed.items == ["Where is my order?", "Has my package shipped?"]
    assert "outside the list" in parsed.error


@pytest.mark.parametrize("text", GARBAGE)
def test_text_list_garbage_fails(text: str) -> None:
    check_garbage(parse_text_list(text, expected=3), text)


def test_failed_reason_quotes_the_raw_reply() -> None:
    parsed = check(parse_text_list("asdf qwer"), "failed")
    assert "no list found" in parsed.error and "'asdf qwer'" in parsed.error


def test_json_of_numbers_is_not_a_text_list() -> None:
    check(parse_text_list("[1, 2, 3]"), "failed")


def test_broken_json_says_so() -> None:
    parsed = check(parse_text_list('["Where is my ord'), "failed")
    assert "looks like JSON" in parsed.error


# ----------------------------------------------------------------------------------------------------
# parse_single_text

REFINED = "Write a 150-word product description of the X200 headphones for first-time buyers."


@pytest.mark.parametrize("text", [
    REFINED,
    f"Here is a clearer version:\n\n\"{REFINED}\"",
    f"Sure! Here's a clearer version of the instruction: {REFINED}",
    f"**Refined instruction:** {REFINED}\n\nThis version specifies the length, product and audience.",
    f"Refined instruction:\n{REFINED}",
    f"Original: Describe the headphones.\nRewritten: {REFINED}",
    f"```\n{REFINED}\n```",
    f"Certainly!\n\n{REFINED}\n\nI hope this helps! Let me know if you need anything else.",
    f'{{"instruction": "{REFINED}"}}',
    f'```json\n{{"refined_instruction": "{REFINED}"}}\n```',
    f'["{REFINED}"]',
    f"1. {REFINED}",
    f"<|start_header_id|>assistant<|end_header_id|>\n\n{REFINED}<|eot_id|>",
    f"“{REFINED}”",
])
def test_single_text_shapes(text: str) -> None:
    assert check(parse_single_text(text), "ok").items == [REFINED]


def test_single_text_keeps_instructions_that_start_like_chatter() -> None:
    text = "Here is a customer email. Write a polite reply that apologizes for the late delivery."
    assert check(parse_single_text(text), "ok").items == [text]


def test_single_text_keeps_a_code_block_that_belongs_to_the_instruction() -> None:
    text = "Fix the bug in this function and explain the fix:\n```python\ndef add(a, b):\n    return a - b\n```"
    assert check(parse_single_text(text), "ok").items == [text]


def test_single_text_keeps_its_own_second_paragraph() -> None:
    text = "Write a reply to the customer email below.\n\nThese are the requirements: under 100 words, offer a refund."
    assert check(parse_single_text(text), "ok").items == [text]


def test_single_text_multiline_text_survives() -> None:
    text = "Write a reply to the customer below.\nKeep it under 100 words and offer a refund."
    assert check(parse_single_text(text), "ok").items == [text]


def test_single_text_from_a_list_takes_the_first() -> None:
    parsed = check(parse_single_text(f'["{REFINED}", "Describe the X200 headphones in detail."]'), "partial")
    assert parsed.items == [REFINED] and "took the first" in parsed.error


def test_single_text_truncated_json_fails() -> None:
    parsed = check(parse_single_text('{"instruction": "Write a 150-word product descr'), "failed")
    assert "cut off" in parsed.error


def test_single_text_json_without_a_text_field_fails() -> None:
    check(parse_single_text('{"name": "X200", "price": 99}'), "failed")


@pytest.mark.parametrize("text", [*GARBAGE, "Sure!", "Here is a clearer version:", "OK", "<think>hmm"])
def test_single_text_garbage_fails(text: str) -> None:
    check_garbage(parse_single_text(text), text)


def test_single_text_min_words_is_adjustable() -> None:
    check(parse_single_text("Summarize."), "failed")
    assert check(parse_single_text("Summarize.", min_words=1), "ok").items == ["Summarize."]


# ----------------------------------------------------------------------------------------------------
# parse_pairs

GPT_PAIRS = """```json
[
  {"instruction": "Name three primary colors.", "input": "", "output": "Red, blue and yellow."},
  {"instruction": "Translate the sentence to French.", "input": "Good morning", "output": "Bonjour"}
]
```"""

TINY_MODEL_PROSE_PAIRS = """Here are 2 new examples:

Example 6:
instruction: Convert 5 km to miles.
input:
output: 5 km is about 3.11 miles.

Example 7:
instruction: Convert 10 kg to pounds.
input: N/A
output: 10 kg is about 22.05 pounds.

I hope these help!"""

ALPACA_TEMPLATE = """### Instruction:
Summarize the text.

### Input:
The cat sat on the mat all day and did not move.

### Response:
A cat spent the whole day on a mat.

### Instruction:
Give a synonym for "happy".

### Response:
Joyful"""


def test_pairs_json_array_in_fence() -> None:
    parsed = check(parse_pairs(GPT_PAIRS), "ok")
    assert parsed.items == [
        {"instruction": "Name three primary colors.", "input": "", "output": "Red, blue and yellow."},
        {"instruction": "Translate the sentence to French.", "input": "Good morning", "output": "Bonjour"},
    ]


def test_pairs_json_lines_with_an_incomplete_item() -> None:
    text = ('{"instruction": "Name a planet.", "output": "Mars"}\n'
            '{"instruction": "Name a metal.", "input": "", "output": "Iron"}\n'
            '{"instruction": "Name a gas."}')
    parsed = check(parse_pairs(text), "partial")
    assert [p["output"] for p in parsed.items] == ["Mars", "Iron"]
    assert parsed.items[0]["input"] == ""
    assert "skipped 1 of 3 examples (1 missing output)" in parsed.error


def test_pairs_single_object() -> None:
    parsed = check(parse_pairs('{"instruction": "Say hello in Spanish.", "output": "Hola"}'), "ok")
    assert parsed.items == [{"instruction": "Say hello in Spanish.", "input": "", "output": "Hola"}]


def test_pairs_synonym_keys() -> None:
    text = ('[{"question": "What is 2+2?", "answer": "4"}, {"prompt": "Capital of France?", "response": "Paris"},'
            ' {"query": "Largest ocean?", "context": "Earth", "reply": "The Pacific"}]')
    parsed = check(parse_pairs(text), "ok")
    assert parsed.items[2] == {"instruction": "Largest ocean?", "input": "Earth", "output": "The Pacific"}


def test_pairs_truncated_array_keeps_complete_objects() -> None:
    text = ('Sure! Here are 3 examples:\n```json\n[{"instruction": "What is 2+2?", "output": "4"}, '
            '{"instruction": "Capital of France?", "output": "Paris"}, '
            '{"instruction": "Largest ocean?", "output": "The Pac')
    parsed = check(parse_pairs(text), "partial")
    assert [p["output"] for p in parsed.items] == ["4", "Paris"]
    assert "cut off" in parsed.error


def test_pairs_wrapper_object_and_json_lines_in_a_fence() -> None:
    wrapped = '{"examples": [{"instruction": "Name a planet.", "output": "Mars"}]}'
    assert check(parse_pairs(wrapped), "ok").items == [{"instruction": "Name a planet.", "input": "", "output": "Mars"}]
    lines = ('Here you go:\n```jsonl\n{"instruction": "Name a planet.", "output": "Mars"}\n'
             '{"instruction": "Name a metal.", "output": "Iron"}\n```')
    assert [p["output"] for p in check(parse_pairs(lines), "ok").items] == ["Mars", "Iron"]


def test_pairs_truncated_wrapper_object() -> None:
    text = '{"examples": [{"prompt": "Say hi", "response": "Hi!"}, {"prompt": "Say bye", "response": "By'
    parsed = check(parse_pairs(text), "partial")
    assert parsed.items == [{"instruction": "Say hi", "input": "", "output": "Hi!"}]


def test_pairs_tiny_model_prose_imitating_the_prompt() -> None:
    parsed = check(parse_pairs(TINY_MODEL_PROSE_PAIRS), "ok")
    assert parsed.items == [
        {"instruction": "Convert 5 km to miles.", "input": "", "output": "5 km is about 3.11 miles."},
        {"instruction": "Convert 10 kg to pounds.", "input": "", "output": "10 kg is about 22.05 pounds."},
    ]


def test_pairs_alpaca_template_sections() -> None:
    parsed = check(parse_pairs(ALPACA_TEMPLATE), "ok")
    assert parsed.items[0]["input"] == "The cat sat on the mat all day and did not move."
    assert parsed.items[1] == {"instruction": 'Give a synonym for "happy".', "input": "", "output": "Joyful"}


def test_pairs_q_and_a_blocks() -> None:
    text = "Q: What is the boiling point of water?\nA: 100 °C at sea level.\n\nQ: Who wrote Hamlet?\nA: Shakespeare."
    parsed = check(parse_pairs(text), "ok")
    assert parsed.items[1] == {"instruction": "Who wrote Hamlet?", "input": "", "output": "Shakespeare."}


def test_pairs_bold_labels_and_multiline_output() -> None:
    text = ("**Instruction:** Write a haiku about rain.\n**Output:**\nSoft rain on the roof\n"
            "whispers to the sleeping town\npuddles hold the sky")
    parsed = check(parse_pairs(text), "ok")
    assert parsed.items[0]["output"].splitlines() == [
        "Soft rain on the roof", "whispers to the sleeping town", "puddles hold the sky"]


def test_pairs_prose_without_an_answer_is_skipped() -> None:
    text = "Instruction: Name a fruit.\nOutput: Apple\n\nInstruction: Name a vegetable.\n"
    parsed = check(parse_pairs(text), "partial")
    assert parsed.items == [{"instruction": "Name a fruit.", "input": "", "output": "Apple"}]
    assert "missing output" in parsed.error


@pytest.mark.parametrize(("fields", "text", "expected"), [
    (("prompt", "completion"), '[{"prompt": "Write a greeting", "completion": "Hello there!"}]',
     {"prompt": "Write a greeting", "completion": "Hello there!"}),
    (("prompt", "completion"), '[{"instruction": "Summarize", "input": "A long text.", "output": "Short."}]',
     {"prompt": "Summarize\n\nA long text.", "completion": "Short."}),
    (("text", "label"), '[{"text": "Worst purchase ever", "label": "negative"}]',
     {"text": "Worst purchase ever", "label": "negative"}),
    (("text", "label"), '[{"sentence": "I loved it", "sentiment": 1}]', {"text": "I loved it", "label": "1"}),
    (("text", "label"), "Text: Great service, fast delivery.\nLabel: positive",
     {"text": "Great service, fast delivery.", "label": "positive"}),
    (("user", "assistant"), "user: My package never arrived.\nassistant: Sorry! Let me check the tracking.",
     {"user": "My package never arrived.", "assistant": "Sorry! Let me check the tracking."}),
])
def test_pairs_other_formats(fields: tuple[str, ...], text: str, expected: dict[str, str]) -> None:
    assert check(parse_pairs(text, fields=fields), "ok").items == [expected]


def test_pairs_text_label_missing_label_is_skipped() -> None:
    text = '[{"text": "I loved it", "label": "positive"}, {"text": "Meh"}]'
    parsed = check(parse_pairs(text, fields=("text", "label")), "partial")
    assert "missing label" in parsed.error


def test_pairs_duplicates_dropped() -> None:
    row = '{"instruction": "Name a planet.", "output": "Mars"}'
    parsed = check(parse_pairs(f"[{row}, {row}]"), "partial")
    assert len(parsed.items) == 1 and "duplicate" in parsed.error


@pytest.mark.parametrize("text", [*GARBAGE, "[1, 2, 3]", '{"foo": "bar"}', "Here you go!"])
def test_pairs_garbage_fails(text: str) -> None:
    check_garbage(parse_pairs(text), text)


def test_pairs_all_items_invalid_says_why() -> None:
    parsed = check(parse_pairs('[{"instruction": "Name a gas.", "output": ""}, {"output": "Neon"}]'), "failed")
    assert "1 empty output" in parsed.error and "1 missing instruction" in parsed.error


def test_pairs_truncated_before_the_first_item_says_so() -> None:
    parsed = check(parse_pairs('[{"instruction": "Write a po'), "failed")
    assert "looks like JSON" in parsed.error
    parsed = check(parse_pairs('{"name": "X200", "price": 99}'), "failed")
    assert "looks like JSON" not in parsed.error and "no examples found" in parsed.error


# ----------------------------------------------------------------------------------------------------
# parse_styled_answers

LLAMA_SECTIONS = """Sure! Here are the answers:

**Formal:**
Dear customer, we apologize for the delay in your order.

**Casual:**
Hey! Sorry your order is running late.

**Concise:** Sorry for the delay.

I hope this helps!"""


def styled(parsed: Parsed) -> dict[str, str]:
    return {item["style"]: item["answer"] for item in parsed.items}


def test_styled_json_object() -> None:
    text = ('{"formal": "Dear customer, we apologize.", "casual": "Hey, sorry it\'s late!", '
            '"concise": "Sorry for the delay."}')
    parsed = check(parse_styled_answers(text, STYLES), "ok")
    assert [i["style"] for i in parsed.items] == STYLES
    assert styled(parsed)["casual"] == "Hey, sorry it's late!"


def test_styled_json_keys_match_loosely_and_order_follows_styles() -> None:
    text = ('```json\n{"Concise": "Sorry.", "Step_by_step": "1. Check tracking.\\n2. Call us.", '
            '"Formal": "We apologize."}\n```')
    parsed = check(parse_styled_answers(text, ["formal", "step-by-step", "concise"]), "ok")
    assert [i["style"] for i in parsed.items] == ["formal", "step-by-step", "concise"]
    assert styled(parsed)["step-by-step"] == "1. Check tracking.\n2. Call us."


def test_styled_json_array_of_objects_with_a_missing_style() -> None:
    text = '[{"style": "formal", "answer": "We apologize."}, {"style": "Casual", "answer": "Sorry!"}]'
    parsed = check(parse_styled_answers(text, STYLES), "partial")
    assert styled(parsed) == {"formal": "We apologize.", "casual": "Sorry!"}
    assert "concise" in parsed.error


def test_styled_wrapped_json() -> None:
    text = '{"answers": {"formal": "We apologize.", "casual": "So sorry!", "concise": "Sorry."}}'
    assert styled(check(parse_styled_answers(text, STYLES), "ok"))["casual"] == "So sorry!"


def test_styled_truncated_json_keeps_complete_answers() -> None:
    parsed = check(parse_styled_answers('{"formal": "We apologize.", "casual": "Sorry ab', STYLES), "partial")
    assert styled(parsed) == {"formal": "We apologize."}
    assert "cut off" in parsed.error


def test_styled_bare_list_matched_by_order() -> None:
    parsed = check(parse_styled_answers('["We apologize.", "Sorry!", "Sorry."]', STYLES), "partial")
    assert styled(parsed)["casual"] == "Sorry!" and "by order" in parsed.error


def test_styled_bold_sections_with_chatter() -> None:
    parsed = check(parse_styled_answers(LLAMA_SECTIONS, STYLES), "ok")
    assert styled(parsed) == {
        "formal": "Dear customer, we apologize for the delay in your order.",
        "casual": "Hey! Sorry your order is running late.",
        "concise": "Sorry for the delay.",
    }


def test_styled_markdown_headings_keep_multiline_answers() -> None:
    text = ("### Formal\nWe apologize for the inconvenience.\n\n### Casual\nSorry about that!\n\n"
            "### Step-by-step\n1. Check the tracking link.\n2. Contact us if it has not moved.")
    parsed = check(parse_styled_answers(text, ["formal", "casual", "step-by-step"]), "ok")
    assert styled(parsed)["step-by-step"] == "1. Check the tracking link.\n2. Contact us if it has not moved."


def test_styled_numbered_headers_with_suffix_words() -> None:
    text = "1. Formal tone: We regret the delay.\n2. Casual tone: Ugh, sorry!\n3. Concise answer - Sorry."
    assert styled(check(parse_styled_answers(text, STYLES), "ok"))["concise"] == "Sorry."


def test_styled_sentence_starting_with_a_style_word_is_not_a_header() -> None:
    text = "Casual wear is fine for the office.\nFormal: Business attire is required on Mondays."
    parsed = check(parse_styled_answers(text, STYLES), "partial")
    assert styled(parsed) == {"formal": "Business attire is required on Mondays."}


@pytest.mark.parametrize("text", [*GARBAGE, '{"formal": "We apologize for the del', '{"polite": "Hi"}'])
def test_styled_garbage_fails(text: str) -> None:
    check_garbage(parse_styled_answers(text, STYLES), text)


def test_styled_without_styles_fails() -> None:
    check(parse_styled_answers('{"formal": "Hi"}', []), "failed")


# ----------------------------------------------------------------------------------------------------
# Never raise: any text, including huge and weird input.

PARSERS = [
    lambda t: parse_text_list(t, expected=3),
    lambda t: parse_text_list(t),
    parse_single_text,
    lambda t: parse_pairs(t),
    lambda t: parse_pairs(t, fields=("text", "label")),
    lambda t: parse_styled_answers(t, ["formal", "step-by-step", "ELI5"]),
]

# Fragments real replies are made of, so the fuzzer reaches deep into every parser.
FRAGMENTS = st.sampled_from([
    "[", "]", "{", "}", '"', "'", ",", ":", "\n", "\n\n", "```", "```json\n", "1. ", "- ", "* ", "**", "### ",
    "Instruction:", "Input:", "Output:", "Q:", "A:", "Formal:", "**Casual**", '{"instruction": ', '"output": ',
    '{"formal": ', "Variation 1:", "Sure! Here are 3 variations:", "I hope this helps!", "<think>", "</think>",
    "<|im_end|>", "null", "true", "1e999", "\\", "\\u12", "\u202e", "\u0000", "\ud800", "🙂", "é", "\r\n", " ",
])
REPLY = st.one_of(st.text(), st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=60).map("".join))


def assert_valid(parsed: Parsed) -> None:
    assert isinstance(parsed, Parsed)
    assert parsed.status in ("ok", "partial", "failed")
    assert isinstance(parsed.items, list) and isinstance(parsed.error, str)
    assert not parsed.error.startswith("internal parser error"), parsed.error


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(REPLY)
def test_fuzz_never_raises(text: str) -> None:
    for parse in PARSERS:
        assert_valid(parse(text))


@pytest.mark.parametrize("text", [
    "[" * 1_000_000,
    "{" * 1_000_000,
    '{"examples": [' * 40 + '"' + "a" * 300_000,
    "1. Where is my order?\n" * 100_000,
    "Instruction: a\nOutput: b\n" * 20_000,
    '[{"instruction": "a", "output": "b"},' * 20_000,
    "Formal: " * 100_000,
    "\u202e\ud800\x00🙂" * 50_000,
    # Long runs after a label: a regex that can split a run two ways backtracks quadratically on these.
    "1." + "\t" * 50_000 + "x",
    "Instruction" + " " * 150_000 + "x",
    "**Formal" + " " * 150_000 + "!",
    "Refined instruction" + " " * 150_000 + ":",
    "Sure\n\n" * 30_000,
    "Q:\n" * 60_000,
    "\n" * 200_000,
])
def test_huge_and_hostile_input_is_fast(text: str) -> None:
    for parse in PARSERS:
        start = time.perf_counter()
        assert_valid(parse(text))
        assert time.perf_counter() - start < 5


def test_overlong_reply_is_read_up_to_the_limit() -> None:
    text = '["Where is my order?", "Has my package shipped?"]' + " " * MAX_CHARS
    parsed = check(parse_text_list(text), "partial")
    assert parsed.items == ["Where is my order?", "Has my package shipped?"] and "longer than" in parsed.error


@pytest.mark.parametrize("value", [None, 42, b"[\"bytes\"]", ["a list"]])
def test_non_text_input_fails_without_raising(value: object) -> None:
    for parse in (parse_text_list, parse_single_text, parse_pairs):
        check(parse(value), "failed")  # type: ignore[arg-type]
    check(parse_styled_answers(value, STYLES), "failed")  # type: ignore[arg-type]


def test_a_quoted_rewrite_with_quotes_inside_is_unwrapped() -> None:
    text = 'Here is a clearer version:\n"Does the document support the claim? Answer "Support" or "Unsupport"."'
    parsed = parse_single_text(text)
    assert parsed.items == ['Does the document support the claim? Answer "Support" or "Unsupport".']

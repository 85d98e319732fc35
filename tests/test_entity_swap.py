"""Entity swapping: tag alignment as properties over generated NER records, marked text, user lists, errors."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.augment.entity_swap import (
    _faker,
    find_spans,
    has_marked_entities,
    is_swappable,
    normalize_locale,
    require_swappable,
    strip_markup,
    swap_marked_text,
    swap_ner,
    swap_record,
)
from studio.errors import GenerationError
from tests.conftest import SHARED_SEEDS

TYPES = ("PER", "LOC", "ORG", "MISC", "DATE")
PROPERTY = settings(max_examples=100, deadline=None)

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,'-", min_size=1,
                max_size=8)
# A record as segments: ("O", n tokens) or (TYPE, n tokens), each with its tokens.
segments = st.lists(st.tuples(st.sampled_from(("O", *TYPES)), st.lists(words, min_size=1, max_size=3)),
                    max_size=8)


def bio_record(segs: list[tuple[str, list[str]]]) -> tuple[list[str], list[str]]:
    tokens: list[str] = []
    tags: list[str] = []
    for kind, toks in segs:
        tokens += toks
        tags += ["O"] * len(toks) if kind == "O" else [f"B-{kind}"] + [f"I-{kind}"] * (len(toks) - 1)
    return tokens, tags


def io_record(segs: list[tuple[str, list[str]]]) -> tuple[list[str], list[str]]:
    tokens, tags = bio_record(segs)
    return tokens, [t.split("-", 1)[-1] for t in tags]


def bio_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """Independent reference parser that also checks the tags are valid BIO."""
    spans: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        prefix, kind = tag.split("-", 1)
        if prefix == "B":
            spans.append((kind, i, i + 1))
        else:
            assert prefix == "I", tags
            assert spans and spans[-1][0] == kind and spans[-1][2] == i, f"I- without its B-: {tags}"
            spans[-1] = (kind, spans[-1][1], i + 1)
    return spans


def io_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    spans: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        assert "-" not in tag, tags
        if spans and spans[-1][0] == tag and spans[-1][2] == i:
            spans[-1] = (tag, spans[-1][1], i + 1)
        else:
            spans.append((tag, i, i + 1))
    return spans


def outside(tokens: list[str], tags: list[str]) -> list[str]:
    return [tok for tok, tag in zip(tokens, tags, strict=True) if tag == "O"]


def check_swap(tokens: list[str], tags: list[str], new_tokens: list[str], new_tags: list[str], parse) -> None:
    assert len(new_tokens) == len(new_tags)
    assert outside(new_tokens, new_tags) == outside(tokens, tags)
    before, after = parse(tags), parse(new_tags)
    assert [k for k, _, _ in after] == [k for k, _, _ in before]
    # O tokens stay in place relative to the spans: the O-runs between spans are unchanged.
    for (kind, s0, e0), (_, s1, e1) in zip(before, after, strict=True):
        old, new = tokens[s0:e0], new_tokens[s1:e1]
        assert all(t.strip() and " " not in t for t in new)
        if kind == "MISC":  # no Faker source and no user list: kept as is
            assert new == old


@PROPERTY
@given(segs=segments, seed=st.integers(0, 2**31))
def test_bio_records_stay_aligned_and_valid(segs, seed) -> None:
    tokens, tags = bio_record(segs)
    new_tokens, new_tags = swap_ner(tokens, tags, rng_seed=seed)
    check_swap(tokens, tags, new_tokens, new_tags, bio_spans)
    assert swap_ner(tokens, tags, rng_seed=seed) == (new_tokens, new_tags)
    # Entities with a Faker source get a new value.
    for (kind, s0, e0), (_, s1, e1) in zip(bio_spans(tags), bio_spans(new_tags), strict=True):
        if kind in ("PER", "LOC", "ORG", "DATE"):
            assert " ".join(new_tokens[s1:e1]).casefold() != " ".join(tokens[s0:e0]).casefold()


@PROPERTY
@given(segs=segments, seed=st.integers(0, 2**31))
def test_io_records_stay_aligned_and_keep_the_io_scheme(segs, seed) -> None:
    tokens, tags = io_record(segs)
    new_tokens, new_tags = swap_ner(tokens, tags, rng_seed=seed)
    check_swap(tokens, tags, new_tokens, new_tags, io_spans)
    assert swap_ner(tokens, tags, rng_seed=seed) == (new_tokens, new_tags)


@PROPERTY
@given(segs=segments)
def test_find_spans_matches_the_reference_parser(segs) -> None:
    _, tags = bio_record(segs)
    assert [(s.kind, s.start, s.end) for s in find_spans(tags)] == bio_spans(tags)
    _, io_tags = io_record(segs)
    assert [(s.kind, s.start, s.end) for s in find_spans(io_tags)] == io_spans(io_tags)


def test_an_i_tag_without_b_starts_a_span_and_comes_back_valid() -> None:
    tokens, tags = ["Yesterday", "Ada", "Lovelace", "wrote"], ["O", "I-PER", "I-PER", "O"]
    assert [(s.kind, s.start, s.end) for s in find_spans(tags)] == [("PER", 1, 3)]
    new_tokens, new_tags = swap_ner(tokens, tags, rng_seed=3)
    assert new_tags[1] == "B-PER"
    bio_spans(new_tags)
    assert new_tokens[0] == "Yesterday" and new_tokens[-1] == "wrote"


def test_bioes_tags_come_back_as_bioes() -> None:
    tokens = ["Ada", "Lovelace", "visited", "Paris", "."]
    tags = ["B-PER", "E-PER", "O", "S-LOC", "O"]
    for seed in range(20):
        new_tokens, new_tags = swap_ner(tokens, tags, rng_seed=seed)
        assert len(new_tokens) == len(new_tags)
        spans = find_spans(new_tags)
        assert [s.kind for s in spans] == ["PER", "LOC"]
        for s in spans:
            n = s.end - s.start
            expected = [f"S-{s.kind}"] if n == 1 else [f"B-{s.kind}", *[f"I-{s.kind}"] * (n - 2), f"E-{s.kind}"]
            assert new_tags[s.start:s.end] == expected


def test_the_same_entity_gets_the_same_replacement_and_others_differ() -> None:
    tokens = ["Ada", "Lovelace", "met", "Charles", "Babbage", ";", "ada", "lovelace", "smiled"]
    tags = ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-PER", "I-PER", "O"]
    for seed in range(10):
        new_tokens, new_tags = swap_ner(tokens, tags, rng_seed=seed)
        a, b, c = (" ".join(new_tokens[s.start:s.end]) for s in find_spans(new_tags))
        assert a == c != b
        assert a != "Ada Lovelace"


def test_different_seeds_give_different_values() -> None:
    tokens, tags = ["Ada", "Lovelace", "lives", "in", "London"], ["B-PER", "I-PER", "O", "O", "B-LOC"]
    results = {tuple(swap_ner(tokens, tags, rng_seed=s)[0]) for s in range(10)}
    assert len(results) == 10


def test_user_lists_take_over_their_type_and_fill_types_faker_lacks() -> None:
    tokens = ["Ada", "used", "the", "Widget", "Pro", "in", "London"]
    tags = ["B-PER", "O", "O", "B-MISC", "I-MISC", "O", "B-LOC"]
    people = {"Grace Hopper", "Alan Turing"}
    products = {"Gizmo 3", "Doohickey"}
    for seed in range(15):
        new_tokens, new_tags = swap_ner(tokens, tags, rng_seed=seed,
                                        user_values={"per": sorted(people), "MISC": sorted(products)})
        spans = {s.kind: " ".join(new_tokens[s.start:s.end]) for s in find_spans(new_tags)}
        assert spans["PER"] in people
        assert spans["MISC"] in products
        assert spans["LOC"] != "London"  # no user list for LOC: Faker


def test_a_user_list_never_picks_the_original_when_it_has_another_value() -> None:
    for seed in range(10):
        new_tokens, _ = swap_ner(["Paris"], ["B-LOC"], rng_seed=seed, user_values={"LOC": ["Paris", "Rome"]})
        assert new_tokens == ["Rome"]


def test_unknown_types_without_a_list_are_kept() -> None:
    tokens, tags = ["the", "World", "Cup", "final"], ["O", "B-EVENT", "I-EVENT", "O"]
    assert swap_ner(tokens, tags, rng_seed=1) == (tokens, tags)
    assert swap_record("ner", {"tokens": tokens, "tags": tags}, rng_seed=1) is None


def test_locales_are_validated_and_used() -> None:
    assert normalize_locale("en-GB") == "en_GB"
    with pytest.raises(GenerationError) as err:
        swap_ner(["Ada"], ["B-PER"], rng_seed=1, locale="klingon")
    assert "klingon" in str(err.value) and "en_US" in str(err.value) and "de_DE" in str(err.value)
    with pytest.raises(GenerationError, match="locale"):
        require_swappable("ner", [{"tokens": ["Ada"], "tags": ["B-PER"]}], locale="xx_XX")
    tokens, _ = swap_ner(["Ada", "Lovelace"], ["B-PER", "I-PER"], rng_seed=1, locale="ja_JP")
    assert any(ord(ch) > 0x3000 for ch in "".join(tokens))
    assert _faker("de_DE") is _faker("de_DE")  # Faker instances are cached per locale


def test_mismatched_tokens_and_tags_are_refused() -> None:
    with pytest.raises(GenerationError, match="2 tokens but 1 tags"):
        swap_ner(["Ada", "Lovelace"], ["B-PER"], rng_seed=0)


# ----------------------------------------------------------------------------------------------
# Marked text

MARKUP = re.compile(r"\[([^\[\]\n]+)\]\(([A-Z][A-Z0-9_-]*)\)|<([A-Z][A-Z0-9_-]*)>([^<>\n]+)</\3>")
plain = st.text(st.characters(blacklist_characters="[]<>", blacklist_categories=("Cs",)), max_size=15)
value = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1,
                max_size=12).filter(str.strip)


def markup_parts(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(text between markups, [(syntax, type)])."""
    pieces = []
    kinds = []
    last = 0
    for m in MARKUP.finditer(text):
        pieces.append(text[last:m.start()])
        kinds.append(("bracket", m.group(2)) if m.group(1) is not None else ("tag", m.group(3)))
        last = m.end()
    pieces.append(text[last:])
    return pieces, kinds


@PROPERTY
@given(parts=st.lists(st.tuples(plain, st.sampled_from(TYPES), value, st.booleans()), max_size=6),
       tail=plain, seed=st.integers(0, 2**31))
def test_marked_text_keeps_its_markup_and_everything_outside_it(parts, tail, seed) -> None:
    text = "".join(f"{before}[{v}]({k})" if bracket else f"{before}<{k}>{v}</{k}>"
                   for before, k, v, bracket in parts) + tail
    new = swap_marked_text(text, rng_seed=seed)
    assert markup_parts(new) == markup_parts(text)
    assert new == swap_marked_text(text, rng_seed=seed)
    assert has_marked_entities(text) == bool(parts)


def test_marked_text_swaps_values_consistently() -> None:
    text = "Write a short bio of [Ada Lovelace](PER), born in <LOC>London</LOC>. [Ada Lovelace](PER) wrote notes."
    new = swap_marked_text(text, rng_seed=7)
    people = re.findall(r"\[([^\]]+)\]\(PER\)", new)
    assert len(people) == 2 and people[0] == people[1] != "Ada Lovelace"
    assert "<LOC>London</LOC>" not in new and "<LOC>" in new
    assert strip_markup("Hi [Ada](PER) from <LOC>Paris</LOC>") == "Hi Ada from Paris"


def test_markdown_links_and_lowercase_tags_are_not_entities() -> None:
    text = "See [the docs](https://example.com) or [here](docs) and <b>bold</b>."
    assert not has_marked_entities(text)
    assert swap_marked_text(text, rng_seed=1) == text


def test_records_swap_every_text_field_consistently_and_keep_labels() -> None:
    rec = {"instruction": "Who was [Ada Lovelace](PER)?", "input": "",
           "output": "[Ada Lovelace](PER) was a mathematician from <LOC>London</LOC>."}
    out = swap_record("alpaca", rec, rng_seed=2)
    assert out is not None
    name = re.search(r"\[([^\]]+)\]\(PER\)", out["instruction"]).group(1)
    assert name != "Ada Lovelace" and f"[{name}](PER) was a mathematician" in out["output"]

    clf = {"text": "Flight to [Paris](LOC) was great", "label": "positive"}
    out = swap_record("classification", clf, rng_seed=2)
    assert out["label"] == "positive" and "[Paris](LOC)" not in out["text"]

    msgs = {"messages": [{"role": "user", "content": "Book a table for [Ada](PER)."},
                         {"role": "assistant", "content": "Done: a table for [Ada](PER)."}]}
    out = swap_record("messages", msgs, rng_seed=2)
    a, b = (re.search(r"\[([^\]]+)\]\(PER\)", m["content"]).group(1) for m in out["messages"])
    assert a == b != "Ada" and [m["role"] for m in out["messages"]] == ["user", "assistant"]

    assert swap_record("alpaca", {"instruction": "Who was Ada?", "input": "", "output": "A mathematician."},
                       rng_seed=2) is None


# ----------------------------------------------------------------------------------------------
# Which seeds can be swapped


@pytest.fixture(scope="module")
def human_seeds() -> list[dict]:
    rows = [json.loads(line) for line in SHARED_SEEDS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{k: r[k] for k in ("instruction", "input", "output")} for r in rows]


def test_require_swappable_refuses_plain_alpaca_seeds(human_seeds: list[dict]) -> None:
    with pytest.raises(GenerationError) as err:
        require_swappable([("alpaca", r) for r in human_seeds])
    message = str(err.value)
    assert "NER seeds" in message and "[Paris](LOC)" in message and "alpaca rows without marked entities" in message
    with pytest.raises(GenerationError):
        require_swappable("alpaca", human_seeds)


def test_require_swappable_accepts_marked_or_ner_seeds(human_seeds: list[dict]) -> None:
    marked = {**human_seeds[0], "instruction": "Tell me about [Paris](LOC)."}
    require_swappable([("alpaca", r) for r in [*human_seeds, marked]])
    require_swappable("ner", [{"tokens": ["Ada"], "tags": ["B-PER"]}])
    assert is_swappable("alpaca", marked) and not is_swappable("alpaca", human_seeds[0])


def test_require_swappable_explains_all_o_and_unsourced_types() -> None:
    with pytest.raises(GenerationError, match="all O"):
        require_swappable("ner", [{"tokens": ["hello"], "tags": ["O"]}])
    misc = [{"tokens": ["Widget"], "tags": ["B-MISC"]}]
    with pytest.raises(GenerationError, match=r"\(MISC\) have no built-in"):
        require_swappable("ner", misc)
    require_swappable("ner", misc, user_values={"MISC": ["Gizmo"]})
    assert not is_swappable("ner", misc[0]) and is_swappable("ner", misc[0], user_values={"misc": ["Gizmo"]})


def test_bad_user_lists_are_refused() -> None:
    with pytest.raises(GenerationError, match="list of strings"):
        swap_ner(["Ada"], ["B-PER"], rng_seed=0, user_values={"PER": "Grace Hopper"})

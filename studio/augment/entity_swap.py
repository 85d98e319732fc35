"""Entity swapping: replace the named entities of a seed with other values of the same type.

Two kinds of seeds carry entities:

- NER records {"tokens", "tags"}. Tags may use BIO (B-PER, I-PER, O), BIOES (S-PER, E-PER too) or plain IO
  (PER, O). An I- (or E-) tag without a matching open span starts one; in IO, a run of one type is one span.
  Each span's tokens are replaced by the new value split on whitespace, and its tags are re-emitted for the
  new token count in the scheme it came in (B-T I-T..., S-T/B-T I-T E-T, or T T...). O tokens never change.
- Text with marked entities, in any text field of alpaca, prompt_completion, messages or classification
  records: `[Ada Lovelace](PER)` or `<PER>Ada Lovelace</PER>`. Types must be upper case (PER, LOC,
  WORK_OF_ART), so ordinary markdown links like [docs](README) are left alone. The markup stays, with a new
  value inside; text outside the markup is never changed, so every mention to swap must be marked.

Where values come from, per type (matched case-insensitively):

1. The user's own list for that type, when given: it replaces Faker for that type entirely, so a user who
   lists products gets only their products.
2. Faker, in the chosen locale: PER/PERSON names, LOC/LOCATION/GPE a city or a country, CITY, COUNTRY,
   ORG/ORGANIZATION/COMPANY companies, DATE, TIME, EMAIL, PHONE, MONEY, URL, ADDRESS, POSTCODE/ZIP.
3. Otherwise (MISC, EVENT, PRODUCT, ...) the span is kept as it is.

Within one record the same entity (type and text, ignoring case) always gets the same replacement, distinct
entities get distinct replacements, and a replacement differs from the original whenever the source has
another value. A given rng_seed always gives the same result.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from studio.errors import GenerationError

if TYPE_CHECKING:
    from faker import Faker

Style = Literal["io", "bio", "bioes"]

_PREFIXES = frozenset("BIES")

# [value](TYPE) and <TYPE>value</TYPE>; one line, no nested brackets.
_MARKUP_RE = re.compile(r"\[([^\[\]\n]+)\]\(([A-Z][A-Z0-9_-]*)\)|<([A-Z][A-Z0-9_-]*)>([^<>\n]+)</\3>")

LOCALE_EXAMPLES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "ja_JP", "zh_CN")

_TEXT_FIELDS = {"alpaca": ("instruction", "input", "output"), "prompt_completion": ("prompt", "completion"),
                "classification": ("text",)}

# Faker draws are one instance's stream: one record at a time per process keeps a seed reproducible.
_LOCK = threading.Lock()

_MAX_DRAWS = 12


# ----------------------------------------------------------------------------------------------
# Value sources


def _place(fake: Faker, rng: random.Random) -> str:
    return fake.city() if rng.random() < 0.5 else fake.country()


def _date(fake: Faker, rng: random.Random) -> str:
    day = fake.date_object()
    # strftime writes English month names whatever the locale, so other locales get ISO dates. No commas:
    # replacements are split on whitespace, and "June 5," would make a token of "5,".
    if str(fake.locales[0]).startswith("en") and rng.random() < 0.5:
        return f"{day.day} {day.strftime('%B')} {day.year}"
    return day.isoformat()


_GENERATORS: dict[str, Callable[[Faker, random.Random], str]] = {
    "person": lambda f, r: f.name(),
    "place": _place,
    "city": lambda f, r: f.city(),
    "country": lambda f, r: f.country(),
    "company": lambda f, r: f.company(),
    "date": _date,
    "time": lambda f, r: f.time(pattern=r.choice(("%H:%M", "%I:%M %p"))),
    "email": lambda f, r: f.email(),
    "phone": lambda f, r: f.phone_number(),
    "money": lambda f, r: f.pricetag(),
    "url": lambda f, r: f.url(),
    "address": lambda f, r: f.address(),
    "postcode": lambda f, r: f.postcode(),
}

TYPE_SOURCES: dict[str, str] = {
    **dict.fromkeys(("PER", "PERSON"), "person"),
    **dict.fromkeys(("LOC", "LOCATION", "GPE"), "place"),
    "CITY": "city",
    "COUNTRY": "country",
    **dict.fromkeys(("ORG", "ORGANIZATION", "ORGANISATION", "COMPANY"), "company"),
    "DATE": "date",
    "TIME": "time",
    "EMAIL": "email",
    **dict.fromkeys(("PHONE", "PHONE_NUMBER", "TEL"), "phone"),
    "MONEY": "money",
    "URL": "url",
    "ADDRESS": "address",
    **dict.fromkeys(("POSTCODE", "ZIP", "ZIPCODE"), "postcode"),
}
"""Entity type (upper case) -> Faker-backed source. Types not listed keep their text unless the user lists values."""


def normalize_locale(locale: str) -> str:
    """A Faker locale name like en_US (en-US accepted), or GenerationError naming some valid ones."""
    from faker.config import AVAILABLE_LOCALES

    name = str(locale or "").strip().replace("-", "_")
    if name not in AVAILABLE_LOCALES:
        raise GenerationError(f"Unknown locale '{locale}'. Use a Faker locale such as {', '.join(LOCALE_EXAMPLES)} "
                              f"({len(AVAILABLE_LOCALES)} are available).")
    return name


@cache
def _faker(locale: str) -> Faker:
    from faker import Faker

    return Faker(locale)


def _clean_value(value: str) -> str:
    # One line, single spaces, and none of the characters that delimit the markup.
    return " ".join(re.sub(r"[\[\]<>]", " ", str(value)).split())


def clean_user_values(user_values: Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    """{TYPE: [values]} with upper-case types, cleaned, de-duplicated values; GenerationError on a bad shape."""
    if not user_values:
        return {}
    if not isinstance(user_values, Mapping):
        raise GenerationError("Your own entity values must be a mapping of entity type to a list of values, "
                              'like {"PRODUCT": ["Widget Pro", "Gizmo 3"]}.')
    out: dict[str, list[str]] = {}
    for kind, values in user_values.items():
        if isinstance(values, str) or not isinstance(values, Iterable):
            raise GenerationError(f"The values for entity type '{kind}' must be a list of strings, "
                                  f'like ["Widget Pro", "Gizmo 3"].')
        key = str(kind).strip().upper()
        cleaned = list(dict.fromkeys(v for v in (_clean_value(x) for x in values) if v))
        if key and cleaned:
            out.setdefault(key, [])
            out[key] += [v for v in cleaned if v not in out[key]]
    return out


def has_source(kind: str, user_values: Mapping[str, list[str]] | None = None) -> bool:
    """Whether entities of this type can get new values (a built-in source or a user list)."""
    key = kind.strip().upper()
    return key in TYPE_SOURCES or bool(user_values and key in user_values)


class _Swapper:
    """New values for one record: consistent per entity, distinct across entities, seeded."""

    def __init__(self, rng_seed: int, locale: str, user_values: dict[str, list[str]]) -> None:
        self.rng = random.Random(rng_seed)
        self.fake = _faker(locale)
        self.fake.seed_instance(rng_seed)
        self.user_values = user_values
        self.chosen: dict[tuple[str, str], str] = {}
        self.taken: set[str] = set()

    def value_for(self, kind: str, original: str) -> str:
        key = kind.strip().upper()
        original = " ".join(original.split())
        memo = (key, original.casefold())
        if memo not in self.chosen:
            value = self._draw(key, original)
            self.chosen[memo] = value
            self.taken.add(value.casefold())
        return self.chosen[memo]

    def _draw(self, key: str, original: str) -> str:
        def fresh(v: str) -> bool:
            return bool(v) and v.casefold() != original.casefold() and v.casefold() not in self.taken

        if key in self.user_values:
            values = self.user_values[key]
            pool = [v for v in values if fresh(v)] or [v for v in values if v.casefold() != original.casefold()]
            return self.rng.choice(pool) if pool else original
        source = TYPE_SOURCES.get(key)
        if source is None:
            return original
        fallback = ""
        for _ in range(_MAX_DRAWS):
            value = _clean_value(_GENERATORS[source](self.fake, self.rng))
            if fresh(value):
                return value
            if value and value.casefold() != original.casefold():
                fallback = fallback or value
        return fallback or original


# ----------------------------------------------------------------------------------------------
# NER


@dataclass(frozen=True)
class Span:
    kind: str
    """The type as written in the tags (PER, LOC, ...)."""
    start: int
    end: int
    """Exclusive."""
    style: Style


def _split_tag(tag: str) -> tuple[str | None, str]:
    """(prefix, type): ('B', 'PER') for B-PER, (None, 'PER') for IO-style PER, (None, '') for O."""
    tag = str(tag).strip()
    if tag.upper() == "O" or not tag:
        return None, ""
    head, sep, rest = tag.partition("-")
    if sep and rest and head.upper() in _PREFIXES:
        return head.upper(), rest
    return None, tag


def tag_style(tags: list[str]) -> Style:
    """io when no tag has a B-/I-/E-/S- prefix, bioes when any has E- or S-, else bio."""
    prefixes = {_split_tag(t)[0] for t in tags} - {None}
    if not prefixes:
        return "io"
    return "bioes" if prefixes & {"E", "S"} else "bio"


def find_spans(tags: list[str]) -> list[Span]:
    """Entity spans in order. I-/E- without an open span of that type starts one; IO runs are one span."""
    record_style = tag_style(tags)
    spans: list[Span] = []
    open_: tuple[str, int, Style] | None = None  # (type, start, style)

    def close(end: int) -> None:
        nonlocal open_
        if open_ is not None:
            spans.append(Span(open_[0], open_[1], end, open_[2]))
            open_ = None

    for i, tag in enumerate(tags):
        prefix, kind = _split_tag(tag)
        if not kind:
            close(i)
            continue
        style: Style = "io" if prefix is None else record_style
        continues = (open_ is not None and open_[0] == kind and open_[2] == style
                     and prefix in (None, "I", "E"))
        if not continues:
            close(i)
            open_ = (kind, i, style)
        if prefix in ("E", "S"):
            close(i + 1)
    close(len(tags))
    return spans


def span_tags(kind: str, count: int, style: Style) -> list[str]:
    """Tags for a span of `count` tokens in the given scheme."""
    if style == "io":
        return [kind] * count
    if style == "bioes":
        return [f"S-{kind}"] if count == 1 else [f"B-{kind}"] + [f"I-{kind}"] * (count - 2) + [f"E-{kind}"]
    return [f"B-{kind}"] + [f"I-{kind}"] * (count - 1)


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _swap_ner(tokens: list[str], tags: list[str], swapper: _Swapper) -> tuple[list[str], list[str]]:
    new_tokens: list[str] = []
    new_tags: list[str] = []
    pos = 0
    for span in find_spans(tags):
        new_tokens += tokens[pos:span.start]
        new_tags += tags[pos:span.start]
        original = tokens[span.start:span.end]
        value = swapper.value_for(span.kind, " ".join(original))
        words = value.split()  # replacement values are tokenised on whitespace
        if not words or _same(value, " ".join(original)):
            new_tokens += original
            new_tags += tags[span.start:span.end]
        else:
            new_tokens += words
            new_tags += span_tags(span.kind, len(words), span.style)
        pos = span.end
    new_tokens += tokens[pos:]
    new_tags += tags[pos:]
    return new_tokens, new_tags


def swap_ner(tokens: list[str], tags: list[str], *, rng_seed: int, locale: str = "en_US",
             user_values: Mapping[str, Iterable[str]] | None = None) -> tuple[list[str], list[str]]:
    """New (tokens, tags) with every entity span that has a value source replaced; O tokens unchanged."""
    if len(tokens) != len(tags):
        raise GenerationError(f"This NER seed has {len(tokens)} tokens but {len(tags)} tags; every token needs "
                              "exactly one tag. Fix the seed first.")
    locale, values = normalize_locale(locale), clean_user_values(user_values)
    with _LOCK:
        return _swap_ner([str(t) for t in tokens], [str(t) for t in tags], _Swapper(rng_seed, locale, values))


# ----------------------------------------------------------------------------------------------
# Marked text


def has_marked_entities(text: Any) -> bool:
    return isinstance(text, str) and any(m for m in _MARKUP_RE.finditer(text) if _markup_parts(m)[1].strip())


def _markup_parts(match: re.Match[str]) -> tuple[str, str]:
    """(type, value) of one markup match, whichever syntax."""
    if match.group(1) is not None:
        return match.group(2), match.group(1)
    return match.group(3), match.group(4)


def marked_entities(text: str) -> list[tuple[str, str]]:
    """(type, value) of each marked entity, in order."""
    return [_markup_parts(m) for m in _MARKUP_RE.finditer(text) if _markup_parts(m)[1].strip()]


def strip_markup(text: str) -> str:
    """The text as a reader would see it: markup removed, values kept."""
    return _MARKUP_RE.sub(lambda m: _markup_parts(m)[1], text)


def _swap_text(text: str, swapper: _Swapper) -> str:
    def replace(match: re.Match[str]) -> str:
        kind, value = _markup_parts(match)
        if not value.strip():
            return match.group(0)
        new = swapper.value_for(kind, value)
        if _same(new, value):
            return match.group(0)  # unchanged: keep the original spacing too
        return f"[{new}]({kind})" if match.group(1) is not None else f"<{kind}>{new}</{kind}>"

    return _MARKUP_RE.sub(replace, text)


def swap_marked_text(text: str, *, rng_seed: int, locale: str = "en_US",
                     user_values: Mapping[str, Iterable[str]] | None = None) -> str:
    """The text with each marked entity's value replaced, markup kept; text outside the markup unchanged."""
    locale, values = normalize_locale(locale), clean_user_values(user_values)
    with _LOCK:
        return _swap_text(text, _Swapper(rng_seed, locale, values))


# ----------------------------------------------------------------------------------------------
# Records


def _texts(fmt: str, record: dict[str, Any]) -> list[str]:
    if fmt == "messages":
        return [m.get("content") for m in record.get("messages") or [] if isinstance(m, dict)
                and isinstance(m.get("content"), str)]
    return [record[f] for f in _TEXT_FIELDS.get(fmt, ()) if isinstance(record.get(f), str)]


def entity_types(fmt: str, record: dict[str, Any]) -> list[str]:
    """The entity types in a record, in order of appearance (with repeats)."""
    if str(fmt) == "ner":
        return [s.kind for s in find_spans([str(t) for t in record.get("tags") or []])]
    return [kind for text in _texts(str(fmt), record) for kind, _ in marked_entities(text)]


def is_swappable(fmt: str, record: dict[str, Any], *,
                 user_values: Mapping[str, Iterable[str]] | None = None) -> bool:
    """Whether the record has at least one entity that can get a new value (built-in type or user list)."""
    values = clean_user_values(user_values)
    return any(has_source(kind, values) for kind in entity_types(fmt, record))


def swap_record(fmt: str, record: dict[str, Any], *, rng_seed: int, locale: str = "en_US",
                user_values: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any] | None:
    """A copy of the record with its entities swapped, or None when nothing in it could change.

    NER records swap their tagged spans; other formats swap marked entities in every text field (answers
    included, so a question and its answer keep naming the same new entity). Labels are never touched.
    """
    fmt = str(fmt)
    locale, values = normalize_locale(locale), clean_user_values(user_values)
    with _LOCK:
        swapper = _Swapper(rng_seed, locale, values)
        if fmt == "ner":
            tokens, tags = [str(t) for t in record.get("tokens") or []], [str(t) for t in record.get("tags") or []]
            if len(tokens) != len(tags):
                raise GenerationError(f"This NER seed has {len(tokens)} tokens but {len(tags)} tags; every token "
                                      "needs exactly one tag. Fix the seed first.")
            new_tokens, new_tags = _swap_ner(tokens, tags, swapper)
            if new_tokens == tokens:
                return None
            return {**record, "tokens": new_tokens, "tags": new_tags}
        out = dict(record)
        if fmt == "messages":
            out["messages"] = [{**m, "content": _swap_text(m["content"], swapper)}
                               if isinstance(m, dict) and isinstance(m.get("content"), str) else m
                               for m in record.get("messages") or []]
        else:
            for name in _TEXT_FIELDS.get(fmt, ()):
                if isinstance(record.get(name), str):
                    out[name] = _swap_text(record[name], swapper)
    return None if out == record else out


_FORMAT_NAMES = {"alpaca": "alpaca rows", "prompt_completion": "prompt/completion rows",
                 "messages": "chat conversations", "classification": "text + label rows", "ner": "NER rows"}


def require_swappable(seeds: Iterable[tuple[str, dict[str, Any]]] | str,
                      records: Iterable[dict[str, Any]] | None = None, *, locale: str = "en_US",
                      user_values: Mapping[str, Iterable[str]] | None = None) -> None:
    """Raise GenerationError unless entity swapping can change at least one of these seeds.

    Takes (format, record) pairs, or a format and its records: require_swappable("ner", records).
    Also checks the locale and the shape of the user's value lists, so a bad one fails before any work.
    """
    pairs = [(seeds, r) for r in records or []] if isinstance(seeds, str) else list(seeds)
    normalize_locale(locale)
    values = clean_user_values(user_values)
    kinds = [kind for fmt, record in pairs for kind in entity_types(str(fmt), record)]
    if not kinds:
        formats = sorted({str(fmt) for fmt, _ in pairs})
        if formats == ["ner"]:
            what = "NER rows whose tags are all O, so there is no entity to replace"
        else:
            what = " and ".join(_FORMAT_NAMES.get(f, f) for f in formats) + " without marked entities"
        raise GenerationError(
            "Entity swapping needs NER seeds (tokens + tags) or text with marked entities like [Paris](LOC) or "
            f"<PER>Ada Lovelace</PER>. These seeds are {what}. Mark the entities in your seeds, or pick "
            "another strategy (classic augmentation or instruction expansion).")
    if not any(has_source(k, values) for k in kinds):
        found = ", ".join(dict.fromkeys(k.upper() for k in kinds))
        raise GenerationError(
            f"The entity types in these seeds ({found}) have no built-in replacement values. Add your own values "
            "for them (a list per type), or tag entities with a built-in type such as PER, LOC, ORG, DATE, EMAIL, "
            "PHONE or MONEY.")

"""Data profile of a batch or a dataset version: what is in it, counted, at a glance.

Definitions:

- rows per strategy, per parse status (ok / partial / failed; a batch), per filter outcome and selection
  (a batch), per source and split (a version: seed, general, or "batch #N (strategy)").
- fields: each format's fields (`studio.data.formats.FORMATS`); chat messages become one field per role
  (system / user / assistant, the turns of that role joined), token and tag lists are joined with spaces.
  A field's `rows` are the rows whose format has it; `empty` those where it is blank. `unique_share` =
  distinct non-empty values / non-empty values, where "the same" is what the exact-duplicate filter means
  (`dedupe.normalise`: lower-case, punctuation dropped, whitespace collapsed).
- lengths (over non-empty values): words as `diversity.words` counts them; tokens with the embedded chat
  model's tokenizer (SmolLM2, its `tokenizer.json` read by the `tokenizers` library: the same counts as
  `AutoTokenizer(..., add_special_tokens=False)` without importing transformers) when it has been converted
  into the models folder, else a regular expression (each run of letters/digits and each punctuation mark is
  one token). `tokenizer` says which. p90 is the nearest-rank 90th percentile.
- coverage against the diversity plan. A batch's params may hold `plan` = {"topics": [{value, weight}],
  "attributes": {name: [{value, weight}]}} and `plan_version`; each row's meta then holds `plan` =
  {"topic": ..., <attribute>: ...}, the values sampled for it. Per dimension: each planned value's expected
  share (weight / sum of weights) and its observed count and share among the usable rows of planned batches;
  planned values never hit; values seen that the plan does not hold (`(not recorded)`: the row's meta lacks
  the dimension). For a version, expected shares are the planned batches' shares weighted by their rows.
- novelty against the seeds (synthetic rows only, row text = prompt + answer as `diversity.row_text`):
  lexical: each row's ROUGE-L F1 with its closest seed (`seed_overlap.best_overlaps`: exact at and above the
  0.7 threshold, else with its most promising seed), the mean, and the share at or above 0.7 (the
  Self-Instruct novelty test, the diversity report's "share close to a seed"). Semantic, when an embed
  function is given: the highest cosine to a seed (`diversity.nearest_seed`) on a seeded sample of at most
  `embed_sample` rows, the mean, and the share at or above 0.9 (the semantic-duplicate filter's default).

Speed: 10,000 rows profile in a few seconds on two CPU cores without embeddings; the embedding part is the
slow one, hence the sample. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import functools
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.data.formats import FORMATS, SeedFormat
from studio.errors import QualityError
from studio.quality.dedupe import normalise
from studio.quality.diversity import (
    EMBED_SAMPLE,
    SEED_ROUGE_THRESHOLD,
    Embed,
    distinct_n_words,
    nearest_seed,
    row_text,
    sample_indices,
    words,
)
from studio.workspace import Workspace

SEED_COSINE_THRESHOLD = 0.9
"""A row whose meaning is this close (cosine) to a seed reads as a paraphrase of it."""
LENGTH_BINS = 20
NOVELTY_BINS = 10
TOP_LABELS = 10
NOT_RECORDED = "(not recorded)"
NO_PLAN = "no plan"
REGEX_TOKENIZER = "regex (each run of letters/digits and each punctuation mark is one token)"
CHAT_TOKENIZER = "SmolLM2-135M-Instruct tokenizer (the embedded chat model)"
_REGEX_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_")
_ROLES = ("system", "user", "assistant")
_IN_CHUNK = 500  # SQLite caps bound parameters

Counts = Callable[[list[str]], list[int]]
"""texts -> token count of each."""


@dataclass
class FieldProfile:
    name: str
    rows: int
    """Rows whose format has this field."""
    empty: int
    unique: int
    """Distinct non-empty values (normalised as the exact-duplicate filter does)."""
    unique_share: float | None
    distinct_2: float | None
    """Unique word pairs / all word pairs over the field's values (diversity.distinct_n)."""
    words: dict[str, float] | None
    """min, median, p90, max, mean of the non-empty values' lengths in words."""
    tokens: dict[str, float] | None
    histogram: dict[str, Any] = field(default_factory=dict)
    """Lengths in words: {"unit": "words", "lo": 0, "hi": ..., "counts": [LENGTH_BINS counts]}."""
    top_values: list[list[Any]] = field(default_factory=list)
    """For label fields: [value, rows], most common first."""


@dataclass
class DataProfile:
    kind: str
    """"batch" or "version"."""
    id: int
    name: str
    project_id: int
    rows: int
    usable_rows: int
    """Rows with data (a batch: parsed ok or partially; a version: every row)."""
    by_strategy: dict[str, int]
    by_status: dict[str, int]
    """A batch: parse status of every row (ok, partial, failed)."""
    by_outcome: dict[str, int]
    """A batch: passed filters, marked by a filter, not filtered, selected."""
    by_source: dict[str, int]
    """A version: seed, general, batch #N (strategy)."""
    by_split: dict[str, int]
    by_format: dict[str, int]
    fields: list[FieldProfile]
    tokenizer: str
    """How token lengths were counted ('' when they were not)."""
    coverage: dict[str, Any]
    novelty: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def field_named(self, name: str) -> FieldProfile | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class ProfileRow:
    """One row as the profile sees it (the pure part works on these; tests can build them by hand)."""

    format: str
    data: dict[str, Any] | None
    strategy: str
    status: str = "ok"
    origin: str = "synthetic"
    """synthetic, seed or general: only synthetic rows count for coverage and novelty."""
    source: str = ""
    split: str = ""
    plan: dict[str, Any] | None = None
    """The plan of the row's batch (its params' "plan"), None when it had none."""
    sampled: dict[str, Any] = field(default_factory=dict)
    """What the plan drew for this row (its meta's "plan")."""
    plan_version: int | None = None
    batch_id: int | None = None


# --- fields and lengths ------------------------------------------------------------------------------


def field_values(fmt: SeedFormat | str, data: dict[str, Any]) -> dict[str, str]:
    """Field name -> text, for one record: messages by role, token/tag lists joined with spaces."""
    out: dict[str, str] = {}
    for spec in FORMATS[SeedFormat(fmt)].fields:
        value = data.get(spec.name)
        if spec.kind == "messages":
            by_role: dict[str, list[str]] = {}
            for m in value if isinstance(value, list) else []:
                if isinstance(m, dict):
                    by_role.setdefault(str(m.get("role", "")), []).append(str(m.get("content") or ""))
            out.update({role: "\n".join(by_role.get(role, [])) for role in _ROLES})
        elif spec.kind in ("tokens", "tags"):
            out[spec.name] = " ".join(str(t) for t in value) if isinstance(value, list) else ""
        else:
            out[spec.name] = "" if value is None else str(value)
    return out


def regex_token_counts(texts: list[str]) -> list[int]:
    return [len(_REGEX_TOKEN.findall(t)) for t in texts]


@functools.lru_cache(maxsize=4)
def _load_tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def token_counter(ws: Workspace | None) -> tuple[Counts, str]:
    """(count function, what it is): the embedded chat model's tokenizer when its converted folder is in the
    workspace's models folder (reading one JSON file: fast, offline), else the regex count."""
    if ws is not None:
        from studio.models.embedded import converted_chat_dir, is_complete

        folder = converted_chat_dir(ws.models_dir)
        path = folder / "tokenizer.json"
        if is_complete(folder) and path.is_file():
            try:
                tok = _load_tokenizer(str(path))
            except Exception:  # a damaged file only costs the exact count, never the profile
                tok = None
            if tok is not None:
                return (lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)],
                        CHAT_TOKENIZER)
    return regex_token_counts, REGEX_TOKENIZER


def tokenizer_from_file(path: Path, label: str) -> tuple[Counts, str]:
    """A counter from any `tokenizers` JSON file (for callers that know their model's tokenizer)."""
    tok = _load_tokenizer(str(path))
    return (lambda texts: [len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False)]), label


def length_stats(lengths: Sequence[int]) -> dict[str, float] | None:
    if not lengths:
        return None
    ordered = sorted(lengths)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {"min": ordered[0], "median": statistics.median(ordered), "p90": p90, "max": ordered[-1],
            "mean": round(sum(ordered) / len(ordered), 2)}


def binned(values: Sequence[float], lo: float, hi: float, bins: int) -> list[int]:
    """Counts of values in `bins` equal-width bins over [lo, hi] (values outside go to the end bins)."""
    counts = [0] * bins
    width = (hi - lo) / bins or 1.0
    for v in values:
        counts[min(bins - 1, max(0, int((v - lo) / width)))] += 1
    return counts


def _length_histogram(lengths: Sequence[int]) -> dict[str, Any]:
    # hi rounded up to a multiple of the bin count: every bin is a whole number of words wide.
    hi = max(LENGTH_BINS, math.ceil(max(lengths, default=0) / LENGTH_BINS) * LENGTH_BINS)
    return {"unit": "words", "lo": 0, "hi": hi, "counts": binned(lengths, 0, hi, LENGTH_BINS)}


def profile_fields(records: Sequence[tuple[str, dict[str, Any]]], counts: Counts | None) -> list[FieldProfile]:
    """One FieldProfile per field of the records' formats, in format order."""
    texts: dict[str, list[str]] = {}
    labels = {spec.name for spec in (f for s in FORMATS.values() for f in s.fields) if spec.kind == "label"}
    for fmt, data in records:
        for name, value in field_values(fmt, data).items():
            texts.setdefault(name, []).append(value)
    out = []
    for name, values in texts.items():
        filled = [v for v in values if v.strip()]
        distinct = {normalise(v) for v in filled}
        split = [words(v) for v in filled]
        word_lengths = [len(w) for w in split]
        top = [[v, n] for v, n in Counter(filled).most_common(TOP_LABELS)] if name in labels else []
        out.append(FieldProfile(
            name=name, rows=len(values), empty=len(values) - len(filled), unique=len(distinct),
            unique_share=len(distinct) / len(filled) if filled else None, distinct_2=distinct_n_words(split, 2),
            words=length_stats(word_lengths), tokens=length_stats(counts(filled)) if counts and filled else None,
            histogram=_length_histogram(word_lengths), top_values=top))
    return out


# --- plan coverage -----------------------------------------------------------------------------------


def plan_dimensions(plan: dict[str, Any] | None) -> dict[str, list[tuple[str, float]]]:
    """Dimension name ("topic" or an attribute) -> [(value, weight)] in plan order; bad weights count as 1
    (missing, not a number) or 0 (negative), and a repeated value adds up its weights."""
    if not isinstance(plan, dict):
        return {}
    raw: dict[str, Any] = {}
    if isinstance(plan.get("topics"), list):
        raw["topic"] = plan["topics"]
    attributes = plan.get("attributes")
    if isinstance(attributes, dict):
        raw.update({str(k): v for k, v in attributes.items() if k != "topic" and isinstance(v, list)})
    dims: dict[str, list[tuple[str, float]]] = {}
    for name, items in raw.items():
        weights: dict[str, float] = {}
        for item in items:
            value, weight = (item.get("value"), item.get("weight", 1.0)) if isinstance(item, dict) else (item, 1.0)
            if value is None or isinstance(value, dict | list):
                continue
            try:
                w = float(weight)
            except (TypeError, ValueError):
                w = 1.0
            w = w if math.isfinite(w) and w > 0 else 0.0
            weights[str(value)] = weights.get(str(value), 0.0) + w
        if weights:
            dims[name] = list(weights.items())
    return dims


def _expected_shares(values: list[tuple[str, float]]) -> dict[str, float]:
    total = sum(w for _, w in values)
    return {v: (w / total if total > 0 else 1 / len(values)) for v, w in values}


def plan_coverage(rows: Sequence[ProfileRow]) -> dict[str, Any]:
    """Coverage of the plan dimensions by these (usable, synthetic) rows; see the module docstring."""
    dims_of: dict[int, dict[str, list[tuple[str, float]]]] = {}  # rows of one batch share one plan object

    def dims(r: ProfileRow) -> dict[str, list[tuple[str, float]]]:
        if id(r.plan) not in dims_of:
            dims_of[id(r.plan)] = plan_dimensions(r.plan)
        return dims_of[id(r.plan)]

    planned = [r for r in rows if dims(r)]
    out: dict[str, Any] = {"planned": bool(planned), "note": "", "rows": len(planned),
                           "unplanned_rows": len(rows) - len(planned),
                           "plan_versions": sorted({r.plan_version for r in planned if r.plan_version is not None}),
                           "dimensions": []}
    if not planned:
        out["note"] = f"{NO_PLAN}: these rows were generated without a topic and attribute plan"
        return out
    single_plan = len({json.dumps(dims(r), sort_keys=True) for r in planned}) == 1
    expected: dict[str, dict[str, float]] = {}  # dim -> value -> expected rows
    weights: dict[str, dict[str, float]] = {}  # dim -> value -> weight, in plan order
    observed: dict[str, Counter[str]] = {}
    for r in planned:
        for dim, values in dims(r).items():
            exp = expected.setdefault(dim, {})
            for value, share in _expected_shares(values).items():
                exp[value] = exp.get(value, 0.0) + share
            for value, weight in values:
                weights.setdefault(dim, {}).setdefault(value, weight)
            got = r.sampled.get(dim) if isinstance(r.sampled, dict) else None
            observed.setdefault(dim, Counter())[NOT_RECORDED if got is None else str(got)] += 1
    for dim, exp in expected.items():
        seen, n = observed[dim], sum(observed[dim].values())
        values = [{"value": v, "weight": w if single_plan else None, "expected_share": exp[v] / n,
                   "count": seen[v], "share": seen[v] / n} for v, w in weights[dim].items()]
        off = [{"value": v, "count": c, "share": c / n} for v, c in seen.most_common() if v not in exp]
        out["dimensions"].append({
            "name": dim, "rows": n, "planned": len(values), "covered": sum(1 for v in values if v["count"]),
            "values": values, "never_hit": [v["value"] for v in values if not v["count"]], "off_plan": off})
    return out


# --- novelty -----------------------------------------------------------------------------------------


def _summary(scores: Sequence[float], threshold: float) -> dict[str, Any]:
    close = sum(1 for s in scores if s >= threshold)
    return {"mean": sum(scores) / len(scores), "median": statistics.median(scores), "threshold": threshold,
            "close_rows": close, "share_close": close / len(scores),
            "histogram": {"lo": 0.0, "hi": 1.0, "counts": binned(scores, 0.0, 1.0, NOVELTY_BINS)}}


def novelty(synthetic: list[str], seeds: list[str], *, embed: Embed | None = None,
            embed_sample: int | None = EMBED_SAMPLE, rng_seed: int = 0) -> dict[str, Any]:
    """How close the synthetic texts stay to the seeds: lexical always, semantic when `embed` is given."""
    out: dict[str, Any] = {"rows": len(synthetic), "seeds": len(seeds), "lexical": None, "semantic": None,
                           "note": ""}
    if not synthetic or not seeds:
        out["note"] = "no seeds to compare with" if synthetic else "no synthetic rows"
        return out
    from studio.quality.seed_overlap import best_overlaps

    scores = [o.score for o in best_overlaps(synthetic, seeds, SEED_ROUGE_THRESHOLD)]
    out["lexical"] = {"measure": "ROUGE-L F1 with the closest seed", **_summary(scores, SEED_ROUGE_THRESHOLD)}
    if embed is None:
        return out
    import numpy as np

    keep = sample_indices(len(synthetic), embed_sample, rng_seed) if embed_sample else list(range(len(synthetic)))
    vectors = np.asarray(embed(list(seeds) + [synthetic[i] for i in keep]), dtype=np.float32)
    sims = nearest_seed(vectors[len(seeds):], vectors[: len(seeds)])
    out["semantic"] = {"measure": "cosine of sentence embeddings with the closest seed", "embedded_rows": len(keep),
                       **_summary([float(s) for s in sims], SEED_COSINE_THRESHOLD)}
    return out


# --- the whole profile ---------------------------------------------------------------------------------


def profile_rows(rows: Sequence[ProfileRow], seeds: Sequence[tuple[str, dict[str, Any]]], *, kind: str, ident: int,
                 name: str, project_id: int, counts: tuple[Counts, str] | None = None, embed: Embed | None = None,
                 embed_sample: int | None = EMBED_SAMPLE, by_outcome: dict[str, int] | None = None
                 ) -> DataProfile:
    """The profile of these rows (pure): `seeds` are (format, data) of the human rows novelty compares with."""
    usable = [r for r in rows if r.data is not None]
    synthetic = [r for r in usable if r.origin == "synthetic"]
    counter, tokenizer = counts if counts else (None, "")
    return DataProfile(
        kind=kind, id=ident, name=name, project_id=project_id, rows=len(rows), usable_rows=len(usable),
        by_strategy=dict(Counter(r.strategy for r in rows)),
        by_status=dict(Counter(r.status for r in rows)) if kind == "batch" else {},
        by_outcome=by_outcome or {},
        by_source=dict(Counter(r.source for r in rows if r.source)),
        by_split=dict(Counter(r.split for r in rows if r.split)),
        by_format=dict(Counter(r.format for r in usable)),
        fields=profile_fields([(r.format, r.data) for r in usable if r.data is not None], counter),
        tokenizer=tokenizer, coverage=plan_coverage(synthetic),
        novelty=novelty([row_text(r.format, r.data) for r in synthetic if r.data is not None],
                        [row_text(f, d) for f, d in seeds], embed=embed, embed_sample=embed_sample))


def _json(text: str | None, default: Any) -> Any:
    try:
        value = json.loads(text) if text else default
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


def _plan_of(params: dict[str, Any]) -> tuple[dict[str, Any] | None, int | None]:
    plan = params.get("plan")
    version = params.get("plan_version")
    return (plan if isinstance(plan, dict) else None), (version if isinstance(version, int) else None)


def _outcomes(conn: Any, batch_id: int, ids: list[int]) -> dict[str, int]:
    marks = dict(conn.execute("SELECT f.candidate_id, MIN(f.passed) FROM filter_result f JOIN candidate c "
                              "ON c.id = f.candidate_id WHERE c.batch_id = ? GROUP BY f.candidate_id", (batch_id,)))
    selected = conn.execute("SELECT COUNT(*) FROM selection WHERE batch_id = ?", (batch_id,)).fetchone()[0]
    passed = sum(1 for i in ids if marks.get(i) == 1)
    marked = sum(1 for i in ids if marks.get(i) == 0)
    return {"passed filters": passed, "marked by a filter": marked, "not filtered": len(ids) - passed - marked,
            "selected": int(selected)}


def batch_profile(ws: Workspace, batch_id: int, *, embed: Embed | None = None, count_tokens: bool = True,
                  embed_sample: int | None = EMBED_SAMPLE) -> DataProfile:
    """The profile of every row of a batch (failed ones too, for the status counts) against the project's seeds."""
    with ws.read() as conn:
        b = conn.execute("SELECT id, project_id, strategy, params FROM batch WHERE id = ?", (batch_id,)).fetchone()
        if b is None:
            raise QualityError(f"There is no batch {batch_id}. `seed-studio batches list` lists the batches.")
        cands = conn.execute("SELECT id, format, data, parse_status, meta FROM candidate WHERE batch_id = ? "
                             "ORDER BY id", (batch_id,)).fetchall()
        seeds = conn.execute("SELECT format, data FROM seed WHERE project_id = ? ORDER BY id",
                             (b["project_id"],)).fetchall()
        outcome = _outcomes(conn, batch_id, [c["id"] for c in cands])
    plan, plan_version = _plan_of(_json(b["params"], {}))
    rows = [ProfileRow(format=c["format"], data=_json(c["data"], {}) if c["data"] is not None else None,
                       strategy=b["strategy"], status=c["parse_status"], plan=plan,
                       sampled=_json(c["meta"], {}).get("plan") or {}, plan_version=plan_version, batch_id=batch_id)
            for c in cands]
    return profile_rows(rows, [(s["format"], _json(s["data"], {})) for s in seeds], kind="batch", ident=batch_id,
                        name=f"batch #{batch_id}", project_id=b["project_id"],
                        counts=token_counter(ws) if count_tokens else None, embed=embed, embed_sample=embed_sample,
                        by_outcome=outcome)


def _lineage(conn: Any, candidate_ids: list[int]) -> dict[int, Any]:
    """candidate id -> (batch id, strategy, params, meta) for the synthetic rows of a version."""
    out: dict[int, Any] = {}
    for start in range(0, len(candidate_ids), _IN_CHUNK):
        chunk = candidate_ids[start:start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(f"SELECT c.id, c.batch_id, c.meta, b.strategy, b.params FROM candidate c JOIN batch b "
                              f"ON b.id = c.batch_id WHERE c.id IN ({marks})", chunk):
            out[r["id"]] = r
    return out


def version_profile(ws: Workspace, version_id: int, *, embed: Embed | None = None, count_tokens: bool = True,
                    embed_sample: int | None = EMBED_SAMPLE) -> DataProfile:
    """The profile of every row of a frozen version (all splits); novelty compares its synthetic rows with its
    own seed rows, so the numbers depend on nothing that can change after freezing (but the batch plans, which
    are read from the batches while they exist)."""
    from studio.data.versions import get_version_by_id

    version = get_version_by_id(ws, version_id)
    with ws.read() as conn:
        frozen = conn.execute("SELECT split, origin, source_id, format, data FROM dataset_row WHERE version_id = ? "
                              "ORDER BY CASE split WHEN 'train' THEN 0 WHEN 'validation' THEN 1 ELSE 2 END, position",
                              (version_id,)).fetchall()
        lineage = _lineage(conn, [r["source_id"] for r in frozen
                                  if r["origin"] == "synthetic" and r["source_id"] is not None])
    params_of: dict[int, tuple[dict[str, Any] | None, int | None]] = {}
    rows = []
    for r in frozen:
        data = _json(r["data"], {})
        if r["origin"] != "synthetic":
            rows.append(ProfileRow(format=r["format"], data=data, strategy=r["origin"], origin=r["origin"],
                                   source=r["origin"], split=r["split"]))
            continue
        src = lineage.get(r["source_id"])
        if src is None:  # its batch was deleted since: the row stays, its provenance is gone
            rows.append(ProfileRow(format=r["format"], data=data, strategy="unknown", source="unknown batch",
                                   split=r["split"]))
            continue
        if src["batch_id"] not in params_of:
            params_of[src["batch_id"]] = _plan_of(_json(src["params"], {}))
        plan, plan_version = params_of[src["batch_id"]]
        rows.append(ProfileRow(format=r["format"], data=data, strategy=src["strategy"],
                               source=f"batch #{src['batch_id']} ({src['strategy']})", split=r["split"], plan=plan,
                               sampled=_json(src["meta"], {}).get("plan") or {}, plan_version=plan_version,
                               batch_id=src["batch_id"]))
    seeds = [(r.format, r.data) for r in rows if r.origin == "seed" and r.data is not None]
    return profile_rows(rows, seeds, kind="version", ident=version_id, name=version.name,
                        project_id=version.project_id, counts=token_counter(ws) if count_tokens else None,
                        embed=embed, embed_sample=embed_sample)


def available_embed(ws: Workspace) -> Embed | None:
    """The workspace's sentence embedder when its package is installed, else None (novelty stays lexical)."""
    from studio.models.embedded import embedder_dir

    if embedder_dir() is None:
        return None
    from studio.quality.embeddings import embed_texts

    return lambda texts: embed_texts(ws, texts)


# --- plain words ---------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def status_line(p: DataProfile) -> str:
    if p.kind == "batch":
        parts = ", ".join(f"{k} {v}" for k, v in p.by_status.items())
        return f"{p.usable_rows} of {p.rows} rows are usable ({parts or 'no rows yet'})."
    parts = ", ".join(f"{k} {v}" for k, v in p.by_source.items())
    return f"{p.rows} rows ({parts})."


def field_lines(p: DataProfile) -> list[str]:
    out = []
    for f in p.fields:
        if f.words is None:
            out.append(f"{f.name}: always empty.")
            continue
        empty = f" ({f.empty} empty)" if f.empty else ""
        out.append(f"{f.name}: {_pct(f.unique_share)} unique{empty}; median {f.words['median']:g} words, "
                   f"90% of rows at most {f.words['p90']:g}.")
    return out


def coverage_lines(coverage: dict[str, Any]) -> list[str]:
    if not coverage.get("planned"):
        return [coverage.get("note") or NO_PLAN]
    out = []
    for d in coverage["dimensions"]:
        line = f"{d['name']}: {d['covered']} of {d['planned']} planned values appear in {d['rows']} rows"
        gaps = sorted(d["values"], key=lambda v: v["share"] - v["expected_share"])
        worst = gaps[0] if gaps else None
        if worst and worst["expected_share"] - worst["share"] >= 0.05:
            line += (f"; most under-covered: '{worst['value']}' (planned {_pct(worst['expected_share'])}, got "
                     f"{_pct(worst['share'])})")
        if d["never_hit"]:
            line += f"; never: {', '.join(d['never_hit'][:5])}" + (" …" if len(d["never_hit"]) > 5 else "")
        out.append(line + ".")
    if coverage.get("unplanned_rows"):
        n = coverage["unplanned_rows"]
        out.append(f"{n} {'row comes' if n == 1 else 'rows come'} from batches without a plan and "
                   f"{'is' if n == 1 else 'are'} not counted.")
    return out


def novelty_lines(novelty_: dict[str, Any]) -> list[str]:
    if novelty_.get("note"):
        return [f"Novelty: {novelty_['note']}."]
    out = []
    lex = novelty_["lexical"]
    verdict = ("many rows reword a seed rather than add new material" if lex["share_close"] >= 0.2 else
               "most rows are new material")
    out.append(f"Word overlap with the closest seed averages {lex['mean']:.2f} (ROUGE-L, 0 = nothing shared, "
               f"1 = a copy); {_pct(lex['share_close'])} of rows are at {lex['threshold']} or above: {verdict}.")
    sem = novelty_.get("semantic")
    if sem:
        sampled = f", on a sample of {sem['embedded_rows']} rows" if sem["embedded_rows"] < novelty_["rows"] else ""
        out.append(f"Meaning: similarity to the closest seed averages {sem['mean']:.2f} (cosine){sampled}; "
                   f"{_pct(sem['share_close'])} of rows are at {sem['threshold']} or above (near-paraphrases).")
    return out


def summary_lines(p: DataProfile) -> list[str]:
    """The whole profile in plain words, for the CLI and the UI."""
    lines = [status_line(p), *field_lines(p)]
    if p.tokenizer:
        lines.append(f"Token counts: {p.tokenizer}.")
    return lines + coverage_lines(p.coverage) + novelty_lines(p.novelty)

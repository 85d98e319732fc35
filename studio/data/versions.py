"""Frozen dataset versions: the human seeds and the vetted synthetic rows, split once and copied for good.

    plan = plan_version(ws, project_id, FreezeConfig())     # counts, drops, warnings; writes nothing
    version = freeze_version(ws, project_id, FreezeConfig()) # one transaction: dataset_version + its rows

Which synthetic rows: the `selection` rows of batches that passed their review gate (the reviewer's edit
where there was one) and, with include_reviewed_accepts (default on: a person read each of them), rows
accepted in review in batches that were not discarded; `edit` verdicts count with the edited record, a
`reject` by any reviewer leaves the row out. batch_ids narrows this to some batches.

Leakage rule. The seeds are split first (reproducibly, from rng_seed; classification seeds stratified by
label) into train / validation / test. A synthetic row's source seeds are the seeds its prompt showed
(candidate.seed_ids) plus, transitively, the source seeds of the synthetic examples it was shown
(candidate.meta example_candidate_ids). Then:
- source seeds touching validation: dropped; validation is human-written only.
- source seeds all in test: the row may go to test (origin synthetic), never to train.
- source seeds in test and in train: dropped (in train it leaks the test set, in test it leaks train).
- otherwise (train seeds only, or none known) the row is eligible for train.
test_synthetic_fraction: test gets round(fraction x usable synthetic rows) synthetic rows, the test-derived
ones first (drawn at random when there are more), topped up with train-eligible rows drawn at random; the
test-derived rows beyond that share are dropped (with 0, no synthetic row goes to test). synthetic_cap then
bounds the synthetic share of train (seed + synthetic, general rows not counted): the excess is dropped at
random, reproducibly. Rows that repeat a seed or an earlier synthetic row (same content key) and rows that
are not a complete record are dropped before any of this.

General rows (general_path, any chat format of a file the importer reads) go to train only:
round(general_fraction x train size) of them, drawn reproducibly.

Storage: dataset_version.splits = {"train": n, "validation": n, "test": n} (row counts; dataset_row holds
the rows), config = FreezeConfig.to_dict() with the name filled in, stats = the plan's numbers and the
provenance the dataset card shows. Each dataset_row is a copy (origin seed|synthetic|general; source_id =
seed id / candidate id / 1-based row of the general file), so later seed edits never change a version.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from studio.data.chat import to_messages
from studio.data.formats import FORMATS, SeedFormat, content_key
from studio.data.importer import build_preview
from studio.data.preferences import (
    PreferenceConfig,
    PreferencePair,
    collect_pairs,
    pair_stats,
    prompt_key,
    split_answer,
    split_pairs,
    write_pairs,
)
from studio.data.readers import read_table
from studio.errors import DatasetVersionError, InputFileError
from studio.workspace.store import Workspace, utc_now

SPLITS = ("train", "validation", "test")
ORIGINS = ("seed", "synthetic", "general")
MIN_SEEDS = 5
"""Fewer seeds cannot be split into train, validation and test at all."""
ONE_EACH_FROM = 10
"""From this many seeds on, validation and test get at least one seed each (when their fraction is above 0)."""
SMALL_SPLIT = 10
MAX_NAME_LENGTH = 60

DROP_REASONS: dict[str, str] = {
    "malformed": "not a complete row of its format",
    "duplicate_of_seed": "the same as a seed",
    "duplicate": "the same as an earlier synthetic row",
    "validation_seed": "derived from a validation seed (validation is human-written only)",
    "test_and_train_seeds": "derived from both test and train seeds (it would leak one into the other)",
    "test_seed_over_share": "derived from a test seed, beyond the synthetic share of test (test_synthetic_fraction)",
    "synthetic_cap": "over the synthetic cap of train",
}


# --- configuration ---------------------------------------------------------------------------------


@dataclass
class FreezeConfig:
    """What a person chooses when freezing a version (the UI form, the CLI flags)."""

    name: str | None = None
    """None: the next free "v<N>" of the project. Unique per project, case-insensitive."""
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    synthetic_cap: float = 0.8
    """Largest share of synthetic rows among the train rows (seed + synthetic); 1 = no cap."""
    test_synthetic_fraction: float = 0.1
    batch_ids: list[int] | None = None
    """None: every batch with selected or accepted rows."""
    include_reviewed_accepts: bool = True
    general_path: str | None = None
    general_fraction: float = 0.1
    """General rows = this fraction x train size; used only with general_path."""
    rng_seed: int = 0
    license: str = ""
    """A Hub license id (apache-2.0, cc-by-4.0, ...) for the dataset card; empty: 'other'."""
    language: str = ""
    """ISO language code for the dataset card (en, de, ...); empty: not stated."""
    preferences: PreferenceConfig | None = None
    """Also freeze preference pairs (studio.data.preferences) for DPO / ORPO; None: no pairs."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FreezeConfig:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in names}
        if isinstance(values.get("preferences"), dict):
            values["preferences"] = PreferenceConfig.from_dict(values["preferences"])
        return cls(**values)

    def check(self) -> None:
        """Raise DatasetVersionError saying what is wrong and what to do; nothing is read or written."""
        if self.name is not None:
            if not isinstance(self.name, str):
                raise DatasetVersionError("The version name must be text, like 'v3' or 'cleaned-march'.")
            name = " ".join(self.name.split())
            if len(name) > MAX_NAME_LENGTH:
                raise DatasetVersionError(f"Version names can be at most {MAX_NAME_LENGTH} characters; this one "
                                          f"has {len(name)}. Pick a shorter name.")
            if name.isdigit():
                raise DatasetVersionError(f"'{name}' is only digits, which reads as a version id. Pick a name "
                                          "with a letter in it, like 'v" + name + "'.")
        for attr, low, high in (("validation_fraction", 0.0, 0.5), ("test_fraction", 0.0, 0.5),
                                ("synthetic_cap", 0.0, 1.0), ("test_synthetic_fraction", 0.0, 0.5),
                                ("general_fraction", 0.0, 1.0)):
            _check_number(attr, getattr(self, attr), low, high)
        if self.validation_fraction + self.test_fraction > 0.6:
            raise DatasetVersionError(
                f"validation_fraction + test_fraction is {self.validation_fraction + self.test_fraction:.2f}; "
                "at most 0.6 of the seeds can be held out, or too few are left to train on.")
        if self.batch_ids is not None and (
                not isinstance(self.batch_ids, list | tuple)
                or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in self.batch_ids)):
            raise DatasetVersionError(f"batch_ids must be a list of batch numbers, like [3, 5] (got "
                                      f"{self.batch_ids!r}); leave it empty to use every reviewed batch.")
        if not isinstance(self.include_reviewed_accepts, bool):
            raise DatasetVersionError("include_reviewed_accepts must be true or false.")
        if not isinstance(self.rng_seed, int) or isinstance(self.rng_seed, bool):
            raise DatasetVersionError(f"rng_seed must be a whole number (got {self.rng_seed!r}).")
        if self.general_path is not None and not isinstance(self.general_path, str | Path):
            raise DatasetVersionError("general_path must be the path of a file.")
        if self.general_path and self.general_fraction == 0:
            raise DatasetVersionError("A general dataset file is set but general_fraction is 0, so none of its rows "
                                      "would be used. Set general_fraction above 0, or leave the file out.")
        if self.license and not re.fullmatch(r"[a-z0-9][a-z0-9.+-]{0,63}", self.license):
            raise DatasetVersionError(f"'{self.license}' is not a license id; use a Hub license id in lower case, "
                                      "like apache-2.0, mit or cc-by-4.0, or leave it empty.")
        if self.preferences is not None:
            if not isinstance(self.preferences, PreferenceConfig):
                raise DatasetVersionError("preferences must be a PreferenceConfig (or left out for no pairs).")
            self.preferences.check()
        if self.language and not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?", self.language):
            raise DatasetVersionError(f"'{self.language}' is not a language code; use one like en, de or pt-BR, "
                                      "or leave it empty.")


def _check_number(attr: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DatasetVersionError(f"{attr} must be a number between {low:g} and {high:g} (got {value!r}).")
    if not low <= value <= high:
        raise DatasetVersionError(f"{attr} must be between {low:g} and {high:g} (got {value:g}).")


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetVersion:
    id: int
    project_id: int
    name: str
    family: str
    splits: dict[str, int]
    """Rows per split."""
    config: dict[str, Any]
    stats: dict[str, Any]
    created_at: str

    @property
    def total(self) -> int:
        return sum(self.splits.values())

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """split -> origin -> rows."""
        return self.stats.get("counts", {})

    def to_dict(self) -> dict[str, Any]:
        """Everything about the version (not its rows), as the CLI's --json prints it."""
        return {"id": self.id, "project_id": self.project_id, "name": self.name, "family": self.family,
                "sizes": self.splits, "total": self.total, "counts": self.counts,
                "dropped": self.stats.get("dropped", {}), "warnings": self.stats.get("warnings", []),
                "config": self.config, "stats": self.stats, "created_at": self.created_at}


@dataclass(frozen=True)
class DatasetRow:
    id: int
    version_id: int
    split: str
    position: int
    origin: str
    """seed, synthetic or general."""
    source_id: int | None
    """The seed id, the candidate id, or the 1-based row of the general file."""
    format: SeedFormat
    data: dict[str, Any]


@dataclass
class VersionPlan:
    """What freezing would write, in numbers: nothing is written to make it."""

    name: str
    family: str
    counts: dict[str, dict[str, int]]
    seeds: dict[str, int]
    dropped: dict[str, int]
    warnings: list[str]
    batches: list[dict[str, Any]] = field(default_factory=list)
    general: dict[str, Any] | None = None
    preferences: dict[str, Any] | None = None
    """pair_stats of the preference pairs (None when the config asks for none)."""

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {s: sum(self.counts[s].values()) for s in SPLITS}

    @property
    def train_synthetic_share(self) -> float:
        train = self.counts["train"]
        human_and_synthetic = train["seed"] + train["synthetic"]
        return train["synthetic"] / human_and_synthetic if human_and_synthetic else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sizes": self.sizes, "total": self.total,
                "train_synthetic_share": self.train_synthetic_share}

    def summary(self) -> str:
        """Plain lines for the CLI and the UI."""
        lines = [f"Version {self.name}: {self.total} rows."]
        for split in SPLITS:
            c = self.counts[split]
            parts = [f"{c[o]} {o}" for o in ORIGINS if c[o]]
            lines.append(f"  {split}: {self.sizes[split]} rows" + (f" ({', '.join(parts)})" if parts else ""))
        for reason, n in self.dropped.items():
            if n:
                lines.append(f"  dropped {n} synthetic rows: {DROP_REASONS[reason]}")
        if self.preferences is not None:
            lines.append(preference_summary(self.preferences))
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# --- public API ------------------------------------------------------------------------------------


def plan_version(ws: Workspace, project_id: int, cfg: FreezeConfig | None = None) -> VersionPlan:
    """What freeze_version would make with this config. Raises the same errors; writes nothing."""
    cfg = cfg or FreezeConfig()
    cfg.check()
    general = _load_general(ws, cfg)
    with ws.read() as conn:
        return _build(conn, project_id, cfg, general).plan


def freeze_version(ws: Workspace, project_id: int, cfg: FreezeConfig | None = None) -> DatasetVersion:
    """Split, copy and record a new version in one transaction; on any error nothing is written."""
    cfg = cfg or FreezeConfig()
    cfg.check()
    general = _load_general(ws, cfg)  # file work before the write lock is taken
    with ws.write() as conn:
        built = _build(conn, project_id, cfg, general)
        config = {**cfg.to_dict(), "name": built.plan.name,
                  "general_path": str(cfg.general_path) if cfg.general_path else None}
        splits = {s: len(built.rows[s]) for s in SPLITS}
        version_id = int(conn.execute(
            "INSERT INTO dataset_version(project_id, name, family, splits, config, stats, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (project_id, built.plan.name, built.plan.family, json.dumps(splits), json.dumps(config),
             json.dumps(built.stats, ensure_ascii=False), utc_now())).lastrowid or 0)
        conn.executemany(
            "INSERT INTO dataset_row(version_id, split, position, origin, source_id, format, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(version_id, split, pos, item.origin, item.source_id, str(item.format),
              json.dumps(item.data, ensure_ascii=False))
             for split in SPLITS for pos, item in enumerate(built.rows[split])])
        if built.pairs:
            write_pairs(conn, version_id, built.pairs)
    return get_version_by_id(ws, version_id)


def list_versions(ws: Workspace, project_id: int) -> list[DatasetVersion]:
    """The project's versions, newest first."""
    with ws.read() as conn:
        rows = conn.execute("SELECT * FROM dataset_version WHERE project_id = ? ORDER BY id DESC",
                            (project_id,)).fetchall()
    return [_version(r) for r in rows]


def get_version(ws: Workspace, project_id: int, ref: int | str) -> DatasetVersion:
    """A version of the project by id or by name (case-insensitive)."""
    text = str(ref).strip()
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM dataset_version WHERE project_id = ? AND lower(name) = lower(?)",
                           (project_id, text)).fetchone()
        if row is None and text.isdigit():
            row = conn.execute("SELECT * FROM dataset_version WHERE project_id = ? AND id = ?",
                               (project_id, int(text))).fetchone()
    if row is not None:
        return _version(row)
    names = ", ".join(f"{v.name} (#{v.id})" for v in reversed(list_versions(ws, project_id)))
    if not names:
        raise DatasetVersionError(f"There is no dataset version '{text}': this project has none yet. Freeze "
                                  "one first.")
    raise DatasetVersionError(f"There is no dataset version '{text}' in this project. Its versions: {names}.")


def get_version_by_id(ws: Workspace, version_id: int) -> DatasetVersion:
    with ws.read() as conn:
        row = conn.execute("SELECT * FROM dataset_version WHERE id = ?", (version_id,)).fetchone()
    if row is None:
        raise DatasetVersionError(f"There is no dataset version #{version_id} in this workspace (it may have "
                                  "been deleted with its project). Pick one from the list.")
    return _version(row)


def version_rows(ws: Workspace, version_id: int, split: str | None = None) -> list[DatasetRow]:
    """The frozen rows, split by split (train, validation, test) in position order."""
    if split is not None and split not in SPLITS:
        raise DatasetVersionError(f"'{split}' is not a split; use one of {', '.join(SPLITS)}.")
    get_version_by_id(ws, version_id)
    sql = "SELECT * FROM dataset_row WHERE version_id = ?"
    args: list[Any] = [version_id]
    if split is not None:
        sql += " AND split = ?"
        args.append(split)
    sql += " ORDER BY CASE split WHEN 'train' THEN 0 WHEN 'validation' THEN 1 ELSE 2 END, position"
    with ws.read() as conn:
        rows = conn.execute(sql, args).fetchall()
    return [DatasetRow(r["id"], r["version_id"], r["split"], r["position"], r["origin"], r["source_id"],
                       SeedFormat(r["format"]), json.loads(r["data"])) for r in rows]


def preference_summary(stats: dict[str, Any]) -> str:
    """One plain line (plus reasons) about a version's preference pairs, from pair_stats."""
    from studio.data.preferences import DROP_REASONS as PAIR_DROPS
    from studio.data.preferences import SOURCE_TITLES

    sizes = stats.get("sizes", {})
    sources = ", ".join(f"{n} {SOURCE_TITLES[s]}" for s, n in stats.get("by_source", {}).items() if n)
    line = (f"  preference pairs: {sizes.get('train', 0)} train, {sizes.get('validation', 0)} held out"
            + (f" ({sources})" if sources else ""))
    for reason, n in stats.get("dropped", {}).items():
        line += f"\n  left out {n} pairs: {PAIR_DROPS[reason]}"
    return line


def public_text(text: str) -> str:
    """Text with credentials removed: user:password@ in URLs, query strings, and token-like strings."""
    text = re.sub(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@", r"\1", str(text))
    text = re.sub(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s?#]*)[?#]\S*", r"\1", text)
    return re.sub(r"\b(hf_|sk-|sk_|ghp_|gho_|xox[bp]-)[A-Za-z0-9_-]{6,}", "[redacted]", text)


def teacher_label(teacher: dict[str, Any], strategy: str = "") -> str:
    """A batch's teacher as people read it (model @ public URL), never with a credential."""
    if not teacher:
        return f"none (offline: {strategy})" if strategy else "none (offline)"
    served = teacher.get("served") if isinstance(teacher.get("served"), dict) else {}
    model = str(teacher.get("model") or served.get("model") or "")
    if teacher.get("kind") == "endpoint":
        url = str(teacher.get("base_url") or teacher.get("ref") or "")
        label = f"{model} @ {url}" if model and url else (model or url)
    else:
        label = str(teacher.get("ref") or model)
    return public_text(label) or "unknown teacher"


# --- building --------------------------------------------------------------------------------------


@dataclass
class _Item:
    origin: str
    source_id: int
    format: SeedFormat
    data: dict[str, Any]
    batch_id: int | None = None
    sources: frozenset[int] = frozenset()


@dataclass
class _General:
    name: str
    sha256: str
    format: str
    rows_in_file: int
    items: list[_Item]


@dataclass
class _Built:
    plan: VersionPlan
    rows: dict[str, list[_Item]]
    stats: dict[str, Any]
    pairs: dict[str, list[PreferencePair]] = field(default_factory=dict)


def _rng(cfg: FreezeConfig, purpose: str) -> random.Random:
    # One stream per decision: changing, say, the general mix never reshuffles the seed split.
    return random.Random(f"{cfg.rng_seed}:{purpose}")


def _sample(cfg: FreezeConfig, purpose: str, items: list[_Item], k: int) -> list[_Item]:
    """k items drawn reproducibly, kept in their input order."""
    chosen = {x.source_id for x in _rng(cfg, purpose).sample(items, k)}
    return [x for x in items if x.source_id in chosen]


def _without(items: list[_Item], gone: list[_Item]) -> list[_Item]:
    ids = {x.source_id for x in gone}
    return [x for x in items if x.source_id not in ids]


def _load_general(ws: Workspace, cfg: FreezeConfig) -> _General | None:
    if not cfg.general_path:
        return None
    path = Path(cfg.general_path).expanduser()
    if not path.is_file():
        raise DatasetVersionError(f"The general dataset file {path} does not exist (or is not a file). Pick the "
                                  "file again.")
    try:
        table = read_table(path, max_bytes=ws.settings.max_upload_bytes)
    except InputFileError as exc:
        raise DatasetVersionError(f"The general dataset file cannot be used: {exc}") from None
    preview = build_preview(table)
    if preview.mapping_problem or preview.format is None:
        raise DatasetVersionError(f"The general dataset file is not a chat dataset: {preview.mapping_problem} "
                                  "It needs messages, prompt/completion or instruction/output columns.")
    spec = FORMATS[preview.format]
    if spec.family != "chat":
        raise DatasetVersionError(
            f"The general dataset file {path.name} holds {spec.title} rows; a general dataset must hold chat rows "
            "(messages, prompt/completion or instruction/output) to be mixed into training.")
    usable = preview.usable
    if not usable:
        first = next(iter(preview.problems), None)
        raise DatasetVersionError(f"The general dataset file {path.name} has no usable row"
                                  + (f" ({first})" if first else "") + ". Fix the file or pick another.")
    items = [_Item("general", r.row, preview.format, r.record or {}) for r in usable]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return _General(path.name, digest, str(preview.format), len(preview.rows), items)


def _split_seeds(seeds: list[_Item], cfg: FreezeConfig, family: str) -> dict[str, list[_Item]]:
    n = len(seeds)

    def size(fraction: float) -> int:
        k = round(n * fraction)
        return max(k, 1) if fraction > 0 and n >= ONE_EACH_FROM else k

    n_val, n_test = size(cfg.validation_fraction), size(cfg.test_fraction)
    rng = _rng(cfg, "seed-split")
    if family == "classification":
        # Stratified by label: every label shows up in each split roughly in proportion.
        groups: dict[str, list[_Item]] = {}
        for s in seeds:
            groups.setdefault(str(s.data.get("label", "")), []).append(s)
        keyed = []
        for label in sorted(groups):
            group = groups[label]
            rng.shuffle(group)
            keyed += [((i + rng.random()) / len(group), s.source_id, s) for i, s in enumerate(group)]
        order = [s for _, _, s in sorted(keyed, key=lambda t: (t[0], t[1]))]
    else:
        order = list(seeds)
        rng.shuffle(order)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {"train": train, "validation": val, "test": test}


def lineage(conn: sqlite3.Connection, candidate_id: int, seed_ids: list[int], meta: dict[str, Any],
             memo: dict[int, frozenset[int]]) -> frozenset[int]:
    """Seed ids a candidate derives from: its own, plus those of the synthetic examples its prompt showed."""
    if candidate_id in memo:
        return memo[candidate_id]
    memo[candidate_id] = frozenset(seed_ids)  # guards against a cycle while the examples are followed
    out = set(seed_ids)
    for ex in meta.get("example_candidate_ids") or []:
        r = conn.execute("SELECT seed_ids, meta FROM candidate WHERE id = ?", (ex,)).fetchone()
        if r is not None:
            out |= lineage(conn, int(ex), json.loads(r["seed_ids"] or "[]"), json.loads(r["meta"] or "{}"), memo)
    memo[candidate_id] = frozenset(out)
    return memo[candidate_id]


def _combined_accepts(conn: sqlite3.Connection, project_id: int) -> dict[int, tuple[sqlite3.Row, str | None]]:
    """candidate id -> (row, edited data or None) for rows accepted (or edited) in review, rejected by no one.
    The newest verdict of each reviewer counts, as in studio.review.verdicts."""
    rows = conn.execute(
        "SELECT r.candidate_id, r.reviewer, r.verdict, r.edited_data, c.batch_id, c.format, c.data, c.seed_ids, "
        "c.meta FROM review r JOIN candidate c ON c.id = r.candidate_id JOIN batch b ON b.id = c.batch_id "
        "WHERE b.project_id = ? AND b.status != 'discarded' AND c.data IS NOT NULL ORDER BY r.id",
        (project_id,)).fetchall()
    newest: dict[int, dict[str, sqlite3.Row]] = {}
    for r in rows:
        newest.setdefault(r["candidate_id"], {})[r["reviewer"]] = r
    out: dict[int, tuple[sqlite3.Row, str | None]] = {}
    for cid, by_reviewer in newest.items():
        verdicts = list(by_reviewer.values())
        if any(v["verdict"] == "reject" for v in verdicts):
            continue
        edits = [v for v in verdicts if v["verdict"] == "edit" and v["edited_data"]]
        if edits or all(v["verdict"] == "accept" for v in verdicts):
            out[cid] = (verdicts[-1], edits[-1]["edited_data"] if edits else None)
    return out


def _synthetic_rows(conn: sqlite3.Connection, project_id: int, cfg: FreezeConfig,
                    batches: dict[int, sqlite3.Row]) -> tuple[list[_Item], Counter[int], Counter[int]]:
    """Every vetted synthetic row of the chosen batches, by candidate id; (items, selected per batch,
    reviewed accepts per batch)."""
    wanted = set(cfg.batch_ids) if cfg.batch_ids is not None else None
    memo: dict[int, frozenset[int]] = {}
    items: dict[int, _Item] = {}
    selected: Counter[int] = Counter()
    accepted: Counter[int] = Counter()

    def add(cid: int, batch_id: int, fmt: str, data_text: str, seed_ids: str, meta: str) -> bool:
        if wanted is not None and batch_id not in wanted:
            return False
        try:
            data = json.loads(data_text)
        except (TypeError, ValueError):
            data = None
        sources = lineage(conn, cid, json.loads(seed_ids or "[]"), json.loads(meta or "{}"), memo)
        items[cid] = _Item("synthetic", cid, SeedFormat(fmt), data, batch_id, sources)  # type: ignore[arg-type]
        return True

    for r in conn.execute(
            "SELECT s.candidate_id, s.batch_id, s.data, c.format, c.seed_ids, c.meta FROM selection s "
            "JOIN candidate c ON c.id = s.candidate_id JOIN batch b ON b.id = s.batch_id "
            "WHERE b.project_id = ? AND b.status != 'discarded' ORDER BY s.candidate_id", (project_id,)):
        if add(r["candidate_id"], r["batch_id"], r["format"], r["data"], r["seed_ids"], r["meta"]):
            selected[r["batch_id"]] += 1
    if cfg.include_reviewed_accepts:
        for cid, (r, edited) in sorted(_combined_accepts(conn, project_id).items()):
            if cid in items:
                continue
            if add(cid, r["batch_id"], r["format"], edited or r["data"], r["seed_ids"], r["meta"]):
                accepted[r["batch_id"]] += 1
    return [items[k] for k in sorted(items)], selected, accepted


def _usable(item: _Item, family: str) -> bool:
    if not isinstance(item.data, dict) or FORMATS[item.format].family != family:
        return False
    try:
        msgs = to_messages(item.format, item.data)
        content_key(item.format, item.data)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return bool(msgs) and msgs[-1]["role"] == "assistant" and all(m["content"].strip() for m in msgs)


def _build(conn: sqlite3.Connection, project_id: int, cfg: FreezeConfig, general: _General | None) -> _Built:
    project = conn.execute("SELECT * FROM project WHERE id = ?", (project_id,)).fetchone()
    if project is None:
        raise DatasetVersionError(f"There is no project #{project_id}; nothing was frozen. Pick a project.")
    existing = [r["name"] for r in conn.execute("SELECT name FROM dataset_version WHERE project_id = ?",
                                                (project_id,))]
    name = _resolve_name(cfg, existing)

    seeds = [_Item("seed", r["id"], SeedFormat(r["format"]), json.loads(r["data"]))
             for r in conn.execute("SELECT id, format, data FROM seed WHERE project_id = ? ORDER BY id",
                                   (project_id,))]
    if not seeds:
        raise DatasetVersionError("This project has no seeds yet, so there is nothing to freeze. Import your "
                                  "human-written examples first.")
    if len(seeds) < MIN_SEEDS:
        raise DatasetVersionError(f"This project has {len(seeds)} seeds; a version needs at least {MIN_SEEDS} to "
                                  "split into train, validation and test. Add more human-written examples.")
    families = sorted({FORMATS[s.format].family for s in seeds})
    if len(families) > 1:
        raise DatasetVersionError(f"This project's seeds mix {' and '.join(families)} rows; one version trains "
                                  "one kind of task. Delete the seeds of the other kind, or move them to their "
                                  "own project.")
    family = families[0]
    split = _split_seeds(seeds, cfg, family)
    if not split["train"]:
        raise DatasetVersionError("No seed is left for train with these fractions. Lower validation_fraction "
                                  "or test_fraction.")
    where = {s.source_id: name_ for name_, items in split.items() for s in items}

    batches = {r["id"]: r for r in conn.execute(
        "SELECT b.*, pv.version AS pv_version FROM batch b LEFT JOIN prompt_version pv "
        "ON pv.id = b.prompt_version_id WHERE b.project_id = ? ORDER BY b.id", (project_id,))}
    for b in cfg.batch_ids or []:
        if b not in batches:
            known = ", ".join(str(k) for k in batches) or "none"
            raise DatasetVersionError(f"Batch {b} is not a batch of this project (its batches: {known}). Pick "
                                      "batches from the list.")
        if batches[b]["status"] == "discarded":
            raise DatasetVersionError(f"Batch {b} was discarded by its review gate, so its rows cannot go into a "
                                      "dataset. Leave it out, or reopen and review it again.")
    candidates, selected, accepted = _synthetic_rows(conn, project_id, cfg, batches)
    bad_family = next((c for c in candidates if isinstance(c.data, dict)
                       and FORMATS[c.format].family != family), None)
    if bad_family is not None:
        raise DatasetVersionError(
            f"Batch {bad_family.batch_id} holds {FORMATS[bad_family.format].family} rows but this project's seeds "
            f"are {family} rows; one version trains one kind of task. Leave that batch out (batch_ids).")

    dropped: Counter[str] = Counter()
    seed_keys = {content_key(s.format, s.data) for s in seeds}
    seen: set[str] = set()
    clean: list[_Item] = []
    test_only: list[_Item] = []
    for c in candidates:
        if not _usable(c, family):
            dropped["malformed"] += 1
            continue
        key = content_key(c.format, c.data)
        if key in seed_keys:
            dropped["duplicate_of_seed"] += 1
            continue
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        homes = {where[s] for s in c.sources if s in where}
        if "validation" in homes:
            dropped["validation_seed"] += 1
        elif homes == {"test"}:
            test_only.append(c)
        elif "test" in homes:
            dropped["test_and_train_seeds"] += 1
        else:
            clean.append(c)

    # Test takes its share of synthetic rows: test-derived rows first (they may go nowhere else), then rows
    # drawn from the train-eligible ones; test-derived rows beyond the share are dropped.
    target = round(cfg.test_synthetic_fraction * (len(clean) + len(test_only)))
    test_synthetic = _sample(cfg, "synthetic-test-derived", test_only, min(target, len(test_only)))
    dropped["test_seed_over_share"] += len(test_only) - len(test_synthetic)
    if len(test_synthetic) < target:
        moved = _sample(cfg, "synthetic-test", clean, target - len(test_synthetic))
        test_synthetic += moved
        clean = _without(clean, moved)

    cap = _cap(cfg.synthetic_cap, len(split["train"]))
    if len(clean) > cap:
        dropped["synthetic_cap"] += len(clean) - cap
        clean = _sample(cfg, "synthetic-cap", clean, cap)

    general_rows: list[_Item] = []
    warnings: list[str] = []
    if general is not None:
        want = round(cfg.general_fraction * (len(split["train"]) + len(clean)))
        if want > len(general.items):
            warnings.append(f"the general file has {len(general.items)} usable rows, fewer than the {want} asked "
                            "for; all of them are used.")
            want = len(general.items)
        general_rows = _sample(cfg, "general", general.items, want)
        if family != "chat":
            warnings.append(f"general chat rows are mixed into a {family} project; they train general chat, "
                            "not this task.")

    rows = {
        "train": split["train"] + clean + general_rows,
        "validation": list(split["validation"]),
        "test": split["test"] + test_synthetic,
    }
    for name_ in SPLITS:
        _rng(cfg, f"order-{name_}").shuffle(rows[name_])

    counts = {s: {o: sum(1 for x in rows[s] if x.origin == o) for o in ORIGINS} for s in SPLITS}
    warnings = _warnings(cfg, counts, dropped, len(candidates), selected, accepted) + warnings
    batch_info = _batch_stats(conn, batches, rows, selected, accepted, cfg)
    general_info = None if general is None else {
        "file": general.name, "sha256": general.sha256, "format": general.format,
        "rows_in_file": general.rows_in_file, "usable_rows": len(general.items), "used": len(general_rows),
        "fraction": cfg.general_fraction}
    plan = VersionPlan(
        name=name, family=family, counts=counts,
        seeds={"total": len(seeds), **{s: len(split[s]) for s in SPLITS}},
        dropped={k: dropped[k] for k in DROP_REASONS if dropped[k]}, warnings=warnings, batches=batch_info,
        general=general_info)
    stats = _stats(plan, project, candidates, rows, batch_info)
    moved_ids = {x.source_id for x in test_synthetic} - {x.source_id for x in test_only}
    stats["test_synthetic"] = {"from_test_seeds": len(test_synthetic) - len(moved_ids),
                               "from_train_seeds": len(moved_ids)}
    pairs: dict[str, list[PreferencePair]] = {}
    if cfg.preferences is not None:
        pairs, pair_drops = _preference_pairs(conn, project_id, cfg, rows)
        plan.preferences = stats["preferences"] = pair_stats(pairs, pair_drops, cfg.preferences)
    return _Built(plan, rows, stats, pairs)


def _preference_pairs(conn: sqlite3.Connection, project_id: int, cfg: FreezeConfig,
                      rows: dict[str, list[_Item]]) -> tuple[dict[str, list[PreferencePair]], dict[str, int]]:
    """The pairs of this version: none whose seeds or prompt are in validation or test (see preferences.py)."""
    assert cfg.preferences is not None
    held_seeds: set[int] = set()
    held_prompts: set[str] = set()
    for split in ("validation", "test"):
        for x in rows[split]:
            if x.origin == "seed":  # (a synthetic test row may come from train seeds: its prompt is held out)
                held_seeds.add(x.source_id)
            answer = split_answer(x.format, x.data) if isinstance(x.data, dict) else None
            if answer is not None:
                held_prompts.add(prompt_key(answer[0]))
    preview = collect_pairs(conn, project_id, cfg.preferences, cfg.batch_ids)
    return split_pairs(preview, cfg.preferences, held_out_seeds=held_seeds, held_out_prompts=held_prompts,
                       rng_seed=cfg.rng_seed)


def _resolve_name(cfg: FreezeConfig, existing: list[str]) -> str:
    taken = {n.lower() for n in existing}
    if cfg.name is not None and cfg.name.strip():
        name = " ".join(cfg.name.split())
        if name.lower() in taken:
            raise DatasetVersionError(f"This project already has a version called '{name}'. Versions are never "
                                      "overwritten: pick another name.")
        return name
    numbers = [int(m.group(1)) for n in existing if (m := re.fullmatch(r"v(\d+)", n.strip().lower()))]
    k = max(numbers, default=0) + 1
    while f"v{k}" in taken:
        k += 1
    return f"v{k}"


def _cap(cap: float, human_train: int) -> int:
    """Most synthetic rows train may hold so that synthetic / (synthetic + human) <= cap."""
    if cap >= 1:
        return 10**12
    return math.floor(cap * human_train / (1 - cap) + 1e-9)


def _warnings(cfg: FreezeConfig, counts: dict[str, dict[str, int]], dropped: Counter[str], considered: int,
              selected: Counter[int], accepted: Counter[int]) -> list[str]:
    out = []
    for split, fraction in (("validation", cfg.validation_fraction), ("test", cfg.test_fraction)):
        n = sum(counts[split].values())
        if fraction == 0:
            out.append(f"there is no {split} split ({split}_fraction is 0).")
        elif n < SMALL_SPLIT:
            out.append(f"{split} has only {n} row{'' if n == 1 else 's'}, so its scores will be noisy. Add seeds, "
                       f"or raise {split}_fraction.")
    leaked = dropped["validation_seed"] + dropped["test_and_train_seeds"]
    if considered and leaked / considered > 0.25:
        out.append(f"{leaked} of {considered} synthetic rows were derived from validation or test seeds and left "
                   "out (leakage rule). A different rng_seed gives a different split.")
    if considered == 0:
        out.append("there are no reviewed synthetic rows: this version holds human seeds only.")
    for b in cfg.batch_ids or []:
        if not selected[b] and not accepted[b]:
            out.append(f"batch {b} has no selected or accepted rows; it adds nothing.")
    if dropped["synthetic_cap"]:
        out.append(f"{dropped['synthetic_cap']} synthetic rows were over the synthetic cap "
                   f"({cfg.synthetic_cap:.0%} of train) and left out.")
    return out


def _batch_stats(conn: sqlite3.Connection, batches: dict[int, sqlite3.Row], rows: dict[str, list[_Item]],
                 selected: Counter[int], accepted: Counter[int], cfg: FreezeConfig) -> list[dict[str, Any]]:
    used = {s: Counter(x.batch_id for x in rows[s] if x.origin == "synthetic") for s in SPLITS}
    out = []
    for bid, b in batches.items():
        if not selected[bid] and not accepted[bid] and bid not in (cfg.batch_ids or []):
            continue
        filt = {r["filter"]: r["removed"] for r in conn.execute(
            "SELECT fr.filter, SUM(fr.passed = 0) AS removed FROM filter_result fr JOIN candidate c "
            "ON c.id = fr.candidate_id WHERE c.batch_id = ? GROUP BY fr.filter ORDER BY fr.filter", (bid,))}
        removed = conn.execute(
            "SELECT COUNT(DISTINCT fr.candidate_id) FROM filter_result fr JOIN candidate c ON c.id = fr.candidate_id "
            "WHERE c.batch_id = ? AND fr.passed = 0", (bid,)).fetchone()[0]
        gate = conn.execute("SELECT * FROM gate_decision WHERE batch_id = ? ORDER BY id DESC LIMIT 1",
                            (bid,)).fetchone()
        total = conn.execute("SELECT COUNT(*), SUM(data IS NOT NULL) FROM candidate WHERE batch_id = ?",
                             (bid,)).fetchone()
        try:
            filter_config = json.loads(b["filter_config"]) if b["filter_config"] else None
        except ValueError:
            filter_config = None
        teacher = json.loads(b["teacher"] or "{}")
        out.append({
            "id": bid, "strategy": b["strategy"], "status": b["status"],
            "teacher": teacher_label(teacher, b["strategy"]),
            "prompt_version_id": b["prompt_version_id"], "prompt_version": b["pv_version"],
            "rows": int(total[0] or 0), "usable_rows": int(total[1] or 0),
            "selected": selected[bid], "reviewed_accepts": accepted[bid],
            "used": {s: used[s][bid] for s in SPLITS},
            "filters": {"applied": bool(b["filter_config"]), "filtered_at": b["filtered_at"],
                        "config": filter_config, "removed_by": {k: int(v or 0) for k, v in filt.items()},
                        "removed": int(removed or 0)},
            "gate": None if gate is None else {
                "decision": gate["decision"], "reviewed": gate["reviewed"], "errors": gate["errors"],
                "rate": gate["rate"], "low": gate["low"], "high": gate["high"], "threshold": gate["threshold"],
                "confidence": gate["confidence"], "created_at": gate["created_at"]},
        })
    return out


def _stats(plan: VersionPlan, project: sqlite3.Row, candidates: list[_Item], rows: dict[str, list[_Item]],
           batch_info: list[dict[str, Any]]) -> dict[str, Any]:
    total = plan.total
    by_origin = {o: sum(plan.counts[s][o] for s in SPLITS) for o in ORIGINS}
    info = {b["id"]: b for b in batch_info}
    strategies: Counter[str] = Counter()
    teachers: Counter[str] = Counter()
    prompts: Counter[str] = Counter()
    for split in SPLITS:
        for x in rows[split]:
            if x.origin != "synthetic" or x.batch_id not in info:
                continue
            b = info[x.batch_id]
            strategies[b["strategy"]] += 1
            teachers[b["teacher"]] += 1
            if b["prompt_version"] is not None:
                prompts[f"{b['strategy']} v{b['prompt_version']}"] += 1
    return {
        "project": {"id": project["id"], "name": project["name"], "task": project["task_description"]},
        "family": plan.family,
        "counts": plan.counts,
        "total": total,
        "by_origin": by_origin,
        "share": {o: (by_origin[o] / total if total else 0.0) for o in ORIGINS},
        "train_synthetic_share": plan.train_synthetic_share,
        "seeds": plan.seeds,
        "synthetic": {"considered": len(candidates), "used": by_origin["synthetic"]},
        "dropped": plan.dropped,
        "strategies": dict(strategies),
        "teacher_models": dict(teachers),
        "prompt_versions": dict(prompts),
        "batches": batch_info,
        "general": plan.general,
        "warnings": plan.warnings,
    }


def _version(r: sqlite3.Row) -> DatasetVersion:
    splits = json.loads(r["splits"] or "{}")
    return DatasetVersion(r["id"], r["project_id"], r["name"], r["family"],
                          {s: int(splits.get(s, 0)) for s in SPLITS}, json.loads(r["config"] or "{}"),
                          json.loads(r["stats"] or "{}"), r["created_at"])

"""The dataset card (README.md) of a frozen version: YAML front matter the Hub reads, then plain Markdown.

Everything comes from the version's frozen stats, so a card written today and one written next year say
the same. Text that could carry a credential (teacher URLs, file names) goes through `public_text`.
"""

from __future__ import annotations

import html
from typing import Any

from studio.data.versions import DROP_REASONS, ORIGINS, SPLITS, DatasetVersion, get_version_by_id, public_text
from studio.workspace.store import Workspace

FILE_EXTENSIONS = {"parquet": "parquet", "jsonl": "jsonl", "csv": "csv"}
BUILDERS = {"parquet": "parquet", "jsonl": "json", "csv": "csv"}
"""file format -> the `datasets` builder that loads it."""
CSV_NOTE = ("In the CSV files, a cell that began with `=`, `+`, `-`, `@`, a tab or a carriage return starts with an "
            "extra `'` so that a spreadsheet shows it as text instead of running it as a formula; remove that "
            "first character to get the original text (the Parquet and JSONL exports keep it as written). A "
            "`messages` cell holds the conversation as JSON text.")
TASK_CATEGORIES = {"chat": ["text-generation"], "classification": ["text-generation", "text-classification"],
                   "ner": ["text-generation", "token-classification"]}
COLUMNS = {
    "messages": "`messages`: the conversation, a list of `{role, content}` ending with the assistant's answer",
    "prompt_completion": "`prompt` and `completion`: what the model is given and what it should write",
}


def data_file_name(split: str, file_format: str) -> str:
    """The file of one split inside an export folder (the card's `configs` point at these)."""
    return f"{split}.{FILE_EXTENSIONS[file_format]}"


def size_category(n: int) -> str:
    """The Hub's size_categories bucket for n rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
              (10_000_000, "1M<n<10M")]
    return next((label for bound, label in bounds if n < bound), "10M<n<100M")


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _text(value: Any) -> str:
    """User text (task, names, warnings) for the Markdown body: `<`, `>` and `&` as entities. Why: the card is
    rendered by the Dataset tab and by the Hub; a task or row that holds `<img onerror=...>` must read as
    those characters, not be turned into markup (or silently dropped by a sanitiser). Not for code spans,
    which already show their content literally."""
    return html.escape(str(value), quote=False)


def _cell(value: Any) -> str:
    return _text(public_text(str(value))).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def front_matter(version: DatasetVersion, project_name: str, *, file_format: str = "parquet") -> dict[str, Any]:
    """The card's YAML metadata as a dict (license, language, task, size, tags, configs)."""
    cfg = version.config
    meta: dict[str, Any] = {"license": cfg.get("license") or "other"}
    if cfg.get("language"):
        meta["language"] = [cfg["language"]]
    meta["pretty_name"] = public_text(f"{project_name} {version.name}")
    meta["task_categories"] = TASK_CATEGORIES.get(version.family, ["text-generation"])
    meta["size_categories"] = [size_category(version.total)]
    meta["tags"] = ["synthetic", "seed-studio"]
    meta["configs"] = [{"config_name": "default",
                        "data_files": [{"split": s, "path": data_file_name(s, file_format)}
                                       for s in SPLITS if version.splits.get(s)]}]
    pair_sizes = (version.stats.get("preferences") or {}).get("sizes") or {}
    if any(pair_sizes.values()):
        meta["configs"].append({"config_name": "preferences",
                                "data_files": [{"split": s, "path": data_file_name(f"preferences-{s}", file_format)}
                                               for s, n in pair_sizes.items() if n]})
        meta["tags"].append("dpo")
    return meta


def dataset_card(ws: Workspace, version_id: int, *, file_format: str = "parquet", style: str = "messages") -> str:
    """README.md for the export of a version in `file_format` and `style` (the export's defaults)."""
    import yaml

    version = get_version_by_id(ws, version_id)
    stats = version.stats
    project = stats.get("project", {})
    with ws.read() as conn:
        row = conn.execute("SELECT name, task_description FROM project WHERE id = ?",
                           (version.project_id,)).fetchone()
    project_name = row["name"] if row else project.get("name", "project")
    task = project.get("task") or (row["task_description"] if row else "")
    meta = front_matter(version, project_name, file_format=file_format)
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    body = _body(version, project_name, task, file_format, style, profile_section(ws, version))
    return f"---\n{head}---\n\n" + public_text(body)


def _profile(ws: Workspace, version: DatasetVersion) -> Any:
    """The version's data profile without tokens or embeddings (so the card is the same wherever it is written),
    kept per version: its rows are frozen, and a card is drawn often (Dataset tab, export, publish)."""
    from studio.quality.profile import version_profile

    key = (str(ws.db_path), version.id, version.name, version.created_at)
    if key not in _PROFILES:
        if len(_PROFILES) >= 8:
            _PROFILES.pop(next(iter(_PROFILES)))
        _PROFILES[key] = version_profile(ws, version.id, count_tokens=False)
    return _PROFILES[key]


_PROFILES: dict[tuple[str, int, str, str], Any] = {}


def _share(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _words(stats: dict[str, float] | None, key: str) -> str:
    return "–" if stats is None else f"{stats[key]:g}"


def profile_section(ws: Workspace, version: DatasetVersion) -> list[str]:
    """## Data profile: rows per source, per-field uniqueness and lengths, plan coverage, novelty vs the seeds."""
    from studio.errors import StudioError
    from studio.quality.profile import coverage_lines

    lines = ["## Data profile", ""]
    try:
        p = _profile(ws, version)
    except StudioError as exc:  # a card is never refused for its profile
        return [*lines, f"No profile: {_text(exc)}", ""]
    lines += _table(["source", "rows"], [[k, v] for k, v in p.by_source.items()])
    lines += ["", "Per field (all splits): share of distinct values among the non-empty ones, and length in words "
              "(median and 90th percentile).", ""]
    lines += _table(["field", "rows", "empty", "unique", "median words", "p90 words"],
                    [[f.name, f.rows, f.empty, _share(f.unique_share), _words(f.words, "median"),
                      _words(f.words, "p90")] for f in p.fields])
    lines.append("")
    coverage = p.coverage
    if coverage.get("planned"):
        lines += ["**Plan coverage**: the share of synthetic rows the diversity plan asked for each topic and "
                  "attribute value, and the share that got it.", ""]
        lines += _table(["dimension", "value", "planned", "observed", "rows"],
                        [[d["name"], v["value"], _share(v["expected_share"]), _share(v["share"]), v["count"]]
                         for d in coverage["dimensions"] for v in d["values"]])
        lines += [""] + [f"- {_text(line)}" for line in coverage_lines(coverage)] + [""]
    lexical = p.novelty.get("lexical")
    if lexical:
        lines += [f"**Novelty**: the wording of a synthetic row overlaps the closest of this version's "
                  f"{p.novelty['seeds']} seed rows by {lexical['mean']:.2f} on average (ROUGE-L F1: 0 = no word "
                  f"in common, 1 = a copy); {lexical['close_rows']} of "
                  f"{p.novelty['rows']} ({_pct(lexical['share_close'])}) are at {lexical['threshold']} or above, "
                  "that is close rewordings of a seed.", ""]
    else:
        lines += [f"**Novelty**: not measured ({_text(p.novelty.get('note') or 'no rows')}).", ""]
    return lines


def preference_section(prefs: dict[str, Any] | None) -> list[str]:
    """## Preference pairs: how many, from what people did (or the judge), and what was left out."""
    if not prefs:
        return []
    from studio.data.preferences import DROP_REASONS as PAIR_DROPS
    from studio.data.preferences import SOURCE_TITLES

    sizes = prefs.get("sizes", {})
    lines = ["## Preference pairs", "",
             f"{sizes.get('train', 0)} prompt / chosen / rejected pairs for preference training (DPO, ORPO) and "
             f"{sizes.get('validation', 0)} held out to measure reward accuracy, over {prefs.get('prompts', 0)} "
             "prompts (config `preferences`). Every pair records where it came from (`source`, `provenance`).", ""]
    lines += _table(["source", "pairs"], [[SOURCE_TITLES.get(k, k), v] for k, v in prefs.get("by_source", {}).items()
                                          if v])
    lines.append("")
    if prefs.get("machine"):
        lines += [f"{prefs['machine']} pairs are machine pairs: the LLM judge's scores, not a person, chose the "
                  "better answer (source `judge`).", ""]
    else:
        lines += ["Every pair reflects a person's choice: a review verdict, an edit or a blind A/B vote.", ""]
    lines += ["No pair uses a prompt of the validation or test split, nor rows generated from their seeds.", ""]
    dropped = prefs.get("dropped") or {}
    if dropped:
        lines += _table(["pairs left out because", "pairs"], [[PAIR_DROPS.get(k, k), v] for k, v in dropped.items()])
        lines.append("")
    return lines


def _body(version: DatasetVersion, project_name: str, task: str, file_format: str, style: str,
          profile: list[str] | None = None) -> str:
    stats, cfg = version.stats, version.config
    counts = version.counts
    by_origin = stats.get("by_origin", {o: 0 for o in ORIGINS})
    total = version.total
    lines = [f"# {_text(project_name)}: dataset {_text(version.name)}", ""]
    lines += ["## What it is for", "", _text(task.strip()) or "No task description was written for this project.", ""]
    lines += [f"Made with Seed Studio from {by_origin.get('seed', 0)} human-written seed examples and "
              f"{by_origin.get('synthetic', 0)} synthetic rows generated from them and vetted as described below "
              f"(filters, human review). Version `{version.name}` was frozen on {version.created_at}; its rows "
              "never change (a new version is frozen instead).", ""]

    lines += ["## Splits", ""]
    lines += _table(["split", "human (seed)", "synthetic", "general", "total"],
                    [[s, *(counts.get(s, {}).get(o, 0) for o in ORIGINS), version.splits.get(s, 0)]
                     for s in SPLITS])
    lines += ["", f"Columns: {COLUMNS[style]}; `origin` (seed, synthetic or general), `source_id` (the seed id, "
                  "the generated row's id, or the row of the general file) and `format` (the format the row "
                  "was written in)."]
    if any(not version.splits.get(s) for s in SPLITS):
        lines.append("Empty splits have no file.")
    lines.append("")

    lines += ["## Provenance", ""]
    share = stats.get("share", {})
    lines += [f"- Human-written: {by_origin.get('seed', 0)} of {total} rows ({_pct(share.get('seed'))}); "
              f"synthetic: {by_origin.get('synthetic', 0)} ({_pct(share.get('synthetic'))}); general: "
              f"{by_origin.get('general', 0)} ({_pct(share.get('general'))}).",
              f"- Train is {_pct(stats.get('train_synthetic_share'))} synthetic (seed + synthetic rows; the cap "
              f"was {_pct(cfg.get('synthetic_cap'))}).", ""]
    for title, key, what in (("Strategies", "strategies", "strategy"), ("Teacher models", "teacher_models", "teacher"),
                             ("Prompt versions", "prompt_versions", "prompt version")):
        items = stats.get(key) or {}
        if items:
            lines += [f"**{title}**", ""]
            lines += _table([what, "rows"], [[k, v] for k, v in sorted(items.items())])
            lines.append("")
    batches = stats.get("batches") or []
    lines += profile or []

    lines += ["## Filters", ""]
    filtered = [b for b in batches if b["filters"]["applied"]]
    if filtered:
        lines += ["Automatic filters ran on each generated batch before review; a row that failed one was "
                  "never selected.", ""]
        lines += _table(["batch", "strategy", "rows", "removed", "removed by filter"],
                        [[b["id"], b["strategy"], b["usable_rows"], b["filters"]["removed"],
                          ", ".join(f"{k}: {v}" for k, v in b["filters"]["removed_by"].items() if v) or "none"]
                         for b in filtered])
    else:
        lines.append("No automatic filter was applied to the batches of this version.")
    unfiltered = [b["id"] for b in batches if not b["filters"]["applied"]]
    if filtered and unfiltered:
        lines += ["", "Not filtered: batch " + ", ".join(str(b) for b in unfiltered) + "."]
    lines.append("")

    lines += ["## Human review", ""]
    gated = [b for b in batches if b.get("gate")]
    if gated:
        lines += ["People reviewed a random sample of each batch. The error rate is the share of reviewed rows a "
                  "reviewer rejected or had to fix; the interval is a Wilson score interval for the batch's true "
                  "error rate, and the gate decided by comparing it with the threshold.", ""]
        rows = []
        for b in gated:
            g = b["gate"]
            interval = f"{_pct(g['low'])} – {_pct(g['high'])}" if g["low"] is not None else "–"
            rows.append([b["id"], g["reviewed"], g["errors"], _pct(g["rate"]),
                         f"{interval} ({_pct(g['confidence'])})", _pct(g["threshold"]), g["decision"]])
        lines += _table(["batch", "reviewed", "errors", "error rate", "interval (confidence)", "threshold",
                         "decision"], rows)
    else:
        lines.append("No review gate decision was recorded for these batches.")
    accepts = sum(b.get("reviewed_accepts", 0) for b in batches)
    if accepts:
        lines += ["", f"{accepts} rows come from reviewers' individual accepts in batches not yet through the gate."]
    lines.append("")

    lines += ["## Leakage rule", "",
              "The human seeds were split first into train, validation and test. Validation is human-written "
              "only. A synthetic row generated from a validation seed was left out; one generated only from test "
              "seeds could go to test, never to train; one generated from both test and train seeds was left "
              "out. So no test or validation example, nor anything generated from it, is in train.", ""]
    moved = (stats.get("test_synthetic") or {}).get("from_train_seeds", 0)
    if moved:
        lines += [f"Test also holds {moved} synthetic rows generated from train seeds (drawn to reach the synthetic "
                  "share of test). They were never trained on, but they resemble train rows: the human-written "
                  "test rows (origin `seed`) are the cleaner measure.", ""]
    dropped = stats.get("dropped") or {}
    if dropped:
        lines += ["**Synthetic rows left out when freezing**", ""]
        lines += _table(["reason", "rows"], [[DROP_REASONS.get(k, k), v] for k, v in dropped.items()])
        lines.append("")

    general = stats.get("general")
    if general:
        lines += ["## General data mix", "",
                  f"{general['used']} rows of general chat data from `{general['file']}` (sha256 "
                  f"`{general['sha256'][:16]}…`, {general['usable_rows']} usable rows) were mixed into train "
                  f"({_pct(general['fraction'])} of the train size), so the model keeps its general skills.", ""]

    lines += preference_section(stats.get("preferences"))

    if stats.get("warnings"):
        lines += ["## Notes from freezing", ""] + [f"- {_text(w)}" for w in stats["warnings"]] + [""]

    builder = BUILDERS[file_format]
    files = ", ".join(f'"{s}": "{data_file_name(s, file_format)}"' for s in SPLITS if version.splits.get(s))
    lines += ["## How to load", "", "```python", "from datasets import load_dataset", "",
              f'ds = load_dataset("{builder}", data_files={{{files}}})', "```", "",
              "From the Hub: `load_dataset(\"<user>/<repo>\")`.", ""]
    if file_format == "csv":
        lines += [CSV_NOTE, ""]

    lines += ["## License", ""]
    if cfg.get("license"):
        lines.append(f"{cfg['license']}. Synthetic rows may also be subject to the terms of the teacher models.")
    else:
        lines.append("No license was chosen when this version was frozen (`license: other`). Choose one before "
                     "sharing it; synthetic rows may also be subject to the terms of the teacher models.")
    return "\n".join(lines) + "\n"

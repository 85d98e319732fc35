"""Seed import speed: preview + import of a 50,000-row Alpaca JSON and a 20,000-sentence CoNLL file.

Baseline, in the same process: pandas reading the same file alone (no validation, no database). The studio
path reads, recognises the layout, validates and normalises every row, checks duplicates, then writes every
seed in one SQLite transaction. Also times the preview of a ~50 MB file (the upload limit).

    .venv/bin/python bench/import.py            # prints rows/s per file, then `ratio: X` last

ratio = studio rows/s / pandas rows/s on the Alpaca JSON (the studio does far more per row, so < 1).
Also times the preview of a ~50 MB Alpaca JSON and of a ~50 MB CoNLL file (215,000 sentences).
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORDS = ["seed", "studio", "model", "data", "answer", "question", "river", "mountain", "city", "person", "market",
         "label", "token", "reply", "summary", "translate", "explain", "write", "list", "compare", "poem", "email",
         "letter", "recipe", "bug", "code", "plan", "report"]
TYPES = ["PER", "LOC", "ORG", "MISC"]


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_alpaca(path: Path, rows: int, rng: random.Random, out_words: int = 40) -> None:
    data = [{"instruction": f"{sentence(rng, 10)} #{i}", "input": sentence(rng, 6) if i % 3 else "",
             "output": sentence(rng, out_words)} for i in range(rows)]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def write_conll(path: Path, sentences: int, rng: random.Random) -> None:
    lines = ["-DOCSTART- -X- -X- O", ""]
    for s in range(sentences):
        for t in range(rng.randint(6, 20)):
            tag = "O" if rng.random() < 0.8 else f"I-{rng.choice(TYPES)}"
            word = f"{rng.choice(WORDS)}{s if t == 0 else ''}"
            lines.append(f"{word} NN I-NP {tag}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def pandas_read(path: Path) -> int:
    import pandas as pd

    if path.suffix == ".json":
        return len(pd.read_json(path))
    # CoNLL read the way pandas can: whitespace-separated columns, blank lines skipped.
    frame = pd.read_csv(path, sep=" ", header=None, skip_blank_lines=True, quoting=3, keep_default_na=False)
    return len(frame)


def studio_import(path: Path, home: Path, name: str) -> tuple[int, float]:
    from studio.config import load_settings
    from studio.data.importer import commit_import, preview_file
    from studio.workspace import Workspace
    from studio.workspace.projects import create_project

    ws = Workspace(load_settings(home))
    project = create_project(ws, name)
    t0 = time.perf_counter()
    preview = preview_file(ws, path, project_id=project.id)
    t_preview = time.perf_counter() - t0
    result = commit_import(ws, project.id, preview)
    return result.imported, t_preview


def timed(fn, *args) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        alpaca = tmp_path / "alpaca_50k.json"
        conll = tmp_path / "conll_20k.conll"
        big = tmp_path / "alpaca_50mb.json"
        big_conll = tmp_path / "conll_50mb.conll"
        write_alpaca(alpaca, 50_000, rng)
        write_conll(conll, 20_000, rng)
        write_alpaca(big, 30_000, rng, out_words=230)
        write_conll(big_conll, 215_000, rng)
        import os

        os.environ["SEED_STUDIO_MAX_UPLOAD_MB"] = "60"

        results = {}
        for label, path in (("alpaca 50,000 rows", alpaca), ("conll 20,000 sentences", conll)):
            read, t_pandas = timed(pandas_read, path)
            print(f"{label}: pandas read {read:,} {'token lines' if path is conll else 'rows'}")
            (imported, t_preview), t_studio = timed(studio_import, path, tmp_path / f"home-{path.stem}", label)
            rows = 50_000 if path is alpaca else 20_000
            assert imported == rows, f"{label}: imported {imported}, expected {rows}"
            size = path.stat().st_size / 1e6
            print(f"{label} ({size:.1f} MB): pandas read {rows / t_pandas:,.0f} rows/s ({t_pandas:.2f} s); "
                  f"studio preview + import {rows / t_studio:,.0f} rows/s ({t_studio:.2f} s, preview "
                  f"{t_preview:.2f} s)")
            results[label] = (rows / t_studio) / (rows / t_pandas)

        from studio.config import load_settings
        from studio.data.importer import preview_file
        from studio.workspace import Workspace

        ws = Workspace(load_settings(tmp_path / "home-big"))
        for what, path in (("Alpaca JSON", big), ("CoNLL file", big_conll)):
            preview, t_big = timed(lambda path=path: preview_file(ws, path))
            print(f"preview of a {path.stat().st_size / 1e6:.1f} MB {what} ({preview.counts['rows']:,} rows): "
                  f"{t_big:.2f} s (target: under 10 s)")
        print(f"conll ratio (studio / pandas rows/s): {results['conll 20,000 sentences']:.2f}")
        print(f"ratio: {results['alpaca 50,000 rows']:.2f}")


if __name__ == "__main__":
    main()

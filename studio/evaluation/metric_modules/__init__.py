"""The `evaluate` modules the studio ships, and the loader for them and for the metrics a person adds.

One folder per shipped metric (`rouge_l/rouge_l.py`, `bleu/bleu.py`, `exact_match/exact_match.py`), each an
`evaluate.Metric` loaded by its path, so it works offline. A person may add any other metric by naming it:
an `evaluate` hub id (`meteor`, `owner/name`: fetched once online, then cached by evaluate under HF_HOME like
any Hub download) or the path of a local module (a folder holding `<folder>.py`, or a `.py` file).

    ref = resolve("meteor")                       # a hub id as is; a local path made absolute; else QualityError
    result = compute(ref, predictions, references)  # the module's own dict
    numbers(result)                               # its single numbers, what a table can show

Each module is loaded once per process and kept (the first load imports evaluate, about 5 s). evaluate copies
a local module into an importable folder and keeps a metric's inputs in a cache folder: here both live in a
temporary folder of this process (removed at exit), and inputs stay in memory, so nothing is written under
the user's home for them.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.errors import QualityError

HERE = Path(__file__).resolve().parent
SHIPPED = ("rouge_l", "bleu", "exact_match")
"""Always computed; their results are the rows of every evaluation."""
_RESERVED = {*SHIPPED, "exact", "rouge-l", "rougel"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_CANONICAL = ("evaluate-metric/", "evaluate-comparison/", "evaluate-measurement/")
"""Owners of the modules the evaluate team maintains: the only owners a hosted studio accepts."""
_PREFIX = "seed-studio-metrics-"
_PACKAGE = "seed_studio_metric_modules"
"""The importable package local modules are copied into (not evaluate's own `evaluate_modules`, which lives
under HF_HOME: two folders on sys.path with the same package name would hide one another)."""


@dataclass
class _Loaded:
    module: Any
    lock: threading.Lock
    """An evaluate module holds its inputs between add and compute: one computation at a time."""


_CACHE: dict[str, _Loaded] = {}
_LOAD_LOCK = threading.Lock()
_WORKDIR: list[Path] = []


def shipped(name: str) -> str:
    """The path of a shipped module's folder, as a ref."""
    if name not in SHIPPED:
        raise KeyError(name)
    return str(HERE / name)


def resolve(text: str, *, hosted: bool = False) -> str:
    """A metric a person named, as the ref to store: an existing local path made absolute, else a hub id.

    Raises QualityError saying what is wrong: a shipped metric named again, a path that is not there, or
    text that is neither. `hosted` (a studio others reach, as a Space): a module is code that runs here, so
    only the evaluate team's own modules are accepted, never the server's files or another owner's module.
    """
    name = str(text or "").strip()
    if not name:
        raise QualityError("A metric name is empty. Give an evaluate hub id (like 'meteor') or the path of a "
                           "metric folder, or leave the field empty.")
    if name.lower() in _RESERVED:
        raise QualityError(f"'{name}': ROUGE-L, BLEU and exact match are always computed. Name other metrics; for "
                           f"the evaluate hub's own version give its full id (like 'evaluate-metric/{name}').")
    if hosted:
        return _hosted(name)
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    if name.startswith((".", "/", "~")) or name.endswith(".py") or "\\" in name or name.count("/") > 1:
        raise QualityError(f"There is no metric module at {path}. Give the path of a folder holding "
                           f"'<folder>.py' (an evaluate module) or of a .py file, or an evaluate hub id.")
    if not _HUB_ID.match(name):
        raise QualityError(f"'{name}' is not an evaluate hub id (like 'meteor' or 'owner/name') nor a file or "
                           "folder here. Check the name on huggingface.co/evaluate-metric.")
    return name


def _hosted(name: str) -> str:
    if not _HUB_ID.match(name) or ("/" in name and not name.startswith(_CANONICAL)):
        raise QualityError(f"'{name}': a hosted studio runs only the evaluate team's own metrics (like 'meteor' or "
                           "'evaluate-metric/chrf'), since a metric module is code that would run on this server. "
                           "Run the studio on your own machine to use other modules or your own.")
    return name


def label(ref: str) -> str:
    """How a metric is named in tables: a hub id as is, a local module by its folder or file name."""
    path = Path(ref)
    return path.stem if path.is_absolute() else ref


def load(ref: str) -> Any:
    """The evaluate module behind `ref` (a shipped path, a local path or a hub id), loaded once per process."""
    return _loaded(ref).module


def compute(ref: str, predictions: list[str], references: list[str], **kwargs: Any) -> dict[str, Any]:
    """Run one module on these pairs; extra keyword arguments go to its `_compute`."""
    loaded = _loaded(ref)
    with loaded.lock:
        try:
            result = loaded.module.compute(predictions=predictions, references=references, **kwargs)
        except Exception as error:  # a module's own code: say which metric failed and why
            raise QualityError(f"Metric '{label(ref)}' could not score the answers ({type(error).__name__}: "
                               f"{error}). Leave it out, or check that it compares texts with texts.") from error
    if not isinstance(result, dict):
        raise QualityError(f"Metric '{label(ref)}' returned {type(result).__name__}, not a dict of scores. Leave "
                           "it out.")
    return result


def numbers(result: dict[str, Any]) -> dict[str, float]:
    """The single finite numbers of a module's result (lists, texts and flags are left out)."""
    out = {}
    for key, value in result.items():
        if isinstance(value, bool | str | bytes):
            continue
        try:
            number = float(value)  # numpy scalars too
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[str(key)] = number
    return out


def _loaded(ref: str) -> _Loaded:
    with _LOAD_LOCK:
        if ref not in _CACHE:
            _CACHE[ref] = _Loaded(_load(ref), threading.Lock())
        return _CACHE[ref]


def _workdir() -> Path:
    """This process's folder for evaluate's copies and caches (named with its pid); removed when the process
    exits, or by the next process to make one if this one was killed first (SIGTERM runs no exit handlers)."""
    if not _WORKDIR:
        _sweep_stale()
        path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _WORKDIR.append(path)
    return _WORKDIR[0]


def _sweep_stale() -> None:
    """Remove this user's folders of processes that are gone."""
    from studio.processes import pid_alive

    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        pid = folder.name[len(_PREFIX):].split("-", 1)[0]
        try:
            mine = folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _load(ref: str) -> Any:
    local = Path(ref).is_absolute()
    try:
        return _load_local(ref) if local else _load_hub(ref)
    except QualityError:
        raise
    except ImportError as error:  # evaluate checks a module's imports first and names what to install
        raise QualityError(f"Metric '{label(ref)}' needs packages that are not installed: {error} Install them, "
                           "or leave the metric out.") from None
    except (FileNotFoundError, ConnectionError) as error:
        if local:
            raise QualityError(f"No evaluate module at {ref}: a metric folder holds a script named like the "
                               f"folder ('{Path(ref).name}/{Path(ref).name}.py'). ({error})") from None
        raise QualityError(f"Metric '{ref}' could not be loaded: it is not a file or folder here, and the "
                           "evaluate hub has no such metric or cannot be reached (offline?). Check the id on "
                           "huggingface.co/evaluate-metric, connect once to fetch it (it is cached for later), or "
                           "give the path of a local metric folder.") from None
    except Exception as error:  # the module's own code failed while loading
        raise QualityError(f"Metric '{label(ref)}' failed to load ({type(error).__name__}: {error}). Fix the "
                           "module or leave it out.") from None


def _load_local(path: str) -> Any:
    """evaluate.load's own steps, with the module copied into this process's folder instead of HF_HOME."""
    from evaluate.loading import evaluation_module_factory, import_main_class, init_dynamic_modules

    root = _workdir()
    package = init_dynamic_modules(name=_PACKAGE, hf_modules_cache=str(root / "modules"))
    found = evaluation_module_factory(path, dynamic_modules_path=package)
    cls = import_main_class(found.module_path)
    if cls is None:
        raise QualityError(f"{path} holds no evaluate.Metric class. Define one (see the shipped modules in "
                           f"{HERE}) or give another path.")
    module = cls(cache_dir=str(root / "data"), keep_in_memory=True, hash=found.hash)
    module.download_and_prepare()
    return module


def _load_hub(ref: str) -> Any:
    import evaluate

    return evaluate.load(ref, cache_dir=str(_workdir() / "data"), keep_in_memory=True)

"""Import seeds from a Hugging Face Hub dataset repo, without `datasets.load_dataset`.

Why not `load_dataset`: it may run a dataset's loading script, builds an Arrow cache of the whole dataset, and
its errors are hard to turn into plain advice. Seed sets are small, so this lists the repo's files, downloads
the data files of one split, and reads them with the same readers as an upload (`read_table`).

Every failure a user can cause or meet is a `HubError` naming the dataset and saying what to do. A data file
that downloads but cannot be parsed raises `read_table`'s `InputFileError` (also a `StudioError`), which names
the file as `owner/name/path/in/repo`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from studio.data.readers import SUPPORTED_EXTENSIONS, RawTable, human_size, read_table
from studio.errors import HubError

if TYPE_CHECKING:
    from huggingface_hub.hf_api import RepoSibling

# huggingface_hub sends `dataset_info` with no timeout at all: a firewall that drops packets would hang the UI.
_INFO_TIMEOUT_S = 15.0
_ID_EXAMPLE = "use owner/name, like tatsu-lab/alpaca"
_FORMATS_TEXT = "Parquet, JSONL, JSON, CSV or TSV"
_UPLOAD_INSTEAD = ("download the dataset as a Parquet/JSONL/CSV file elsewhere and upload the file here")

# The split keywords `datasets` recognises in file and folder names, mapped to the split they mean.
_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation",
    "test": "test", "testing": "test", "eval": "test", "evaluation": "test",
}
_SPLIT_ORDER = ("train", "validation", "test")
# Shards written by `push_to_hub` and the Hub's Parquet conversion: data/train_sft-00000-of-00003.parquet.
_SHARD_NAME = re.compile(r"^(?P<split>\w+?)-\d{5}-of-\d{5}")
# Files with a data extension that describe the dataset rather than hold rows.
_NOT_DATA = {"dataset_info.json", "dataset_infos.json", "dataset_dict.json", "state.json"}


def read_hub_dataset(repo_id: str, *, split: str = "train", max_bytes: int, endpoint: str | None = None,
                     token: str | None = None) -> RawTable:
    """Download one split of the Hub dataset `repo_id` and read its rows as one table.

    `endpoint` overrides HF_ENDPOINT (tests, mirrors); `token` overrides HF_TOKEN / the saved login.
    """
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    from studio.hub_client import install_timeouts

    install_timeouts()

    repo_id = repo_id.strip()
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(f"'{repo_id}' is not a valid Hugging Face dataset id: {_ID_EXAMPLE} (the part of the "
                       "dataset page's address after huggingface.co/datasets/).") from None
    if _offline():
        raise HubError(_unreachable(repo_id, endpoint, "offline mode is on: HF_HUB_OFFLINE is set"))

    try:
        info = HfApi(endpoint=endpoint, token=token).dataset_info(
            repo_id, files_metadata=True, timeout=_INFO_TIMEOUT_S)
        chosen = _choose_files(repo_id, info.siblings or [], split)
        sizes = [s.size if s.size is not None else (s.lfs.size if s.lfs else None) for s in chosen]
        if None not in sizes:  # checked before downloading anything; unknown sizes are checked after
            _check_size(repo_id, split, sum(s or 0 for s in sizes), len(chosen), max_bytes)
        # Pin every download to the commit just listed, so the files agree with each other and with the sizes.
        paths = [Path(str(hf_hub_download(repo_id, s.rfilename, repo_type="dataset", revision=info.sha,
                                          endpoint=endpoint, token=token)))
                 for s in chosen]
    except HubError:
        raise
    except Exception as exc:
        translated = _translate(exc, repo_id, endpoint)
        if translated is None:
            raise
        raise translated from exc
    _check_size(repo_id, split, sum(p.stat().st_size for p in paths), len(paths), max_bytes)

    tables: list[RawTable] = []
    for sibling, path in zip(chosen, paths, strict=True):
        tables.append(read_table(path, display_name=f"{repo_id}/{sibling.rfilename}", max_bytes=max_bytes))
    table = _concat(tables, f"{repo_id} ({split} split)")
    for col, names in card_label_names(_card_dict(info)).items():
        table.label_names.setdefault(col, names)  # a CSV/JSON dataset names its classes in its card only
    return table


def _card_dict(info: Any) -> dict[str, Any]:
    card = getattr(info, "card_data", None)
    try:
        return card.to_dict() if card is not None else {}
    except Exception:  # a card the library cannot read only means the labels stay ids
        return {}


def card_label_names(card: dict[str, Any]) -> dict[str, list[str]]:
    """ClassLabel names from a dataset card's `dataset_info.features` (the YAML the Hub shows as the
    dataset's features): `dtype: {class_label: {names: {'0': neg, '1': pos}}}`, also inside `sequence:` /
    `list:` (token tags)."""
    infos = card.get("dataset_info")
    infos = infos if isinstance(infos, list) else [infos]
    out: dict[str, list[str]] = {}
    for info in infos:
        features = info.get("features") if isinstance(info, dict) else None
        for feature in features if isinstance(features, list) else []:
            if not isinstance(feature, dict) or not isinstance(feature.get("name"), str):
                continue
            spec: Any = feature
            for key in ("sequence", "list"):
                if isinstance(spec.get(key), dict):
                    spec = spec[key]
            dtype = spec.get("dtype")
            label = spec.get("class_label") or (dtype.get("class_label") if isinstance(dtype, dict) else None)
            names = label.get("names") if isinstance(label, dict) else None
            if isinstance(names, dict):
                try:
                    ids = sorted(int(k) for k in names)
                except (TypeError, ValueError):
                    continue
                if ids == list(range(len(ids))):
                    out.setdefault(feature["name"], [str(names[k] if k in names else names[str(k)]) for k in ids])
            elif isinstance(names, list) and names:
                out.setdefault(feature["name"], [str(n) for n in names])
    return out


def _offline() -> bool:
    from huggingface_hub import constants

    # The library reads HF_HUB_OFFLINE once, at import; honour it when it was set later too.
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return constants.is_offline_mode() or flag


def _split_of(path: str) -> str | None:
    """The split a data file belongs to, read from its path the way `datasets` does; None when it names none."""
    p = PurePosixPath(path.lower())
    shard = _SHARD_NAME.match(p.name)
    if shard:
        return _SPLIT_ALIASES.get(shard["split"], shard["split"])
    parts = [*p.parent.parts, p.name.split(".")[0]]
    for part in reversed(parts):  # a whole folder or file name: train/x.csv, data/test.jsonl
        if part in _SPLIT_ALIASES:
            return _SPLIT_ALIASES[part]
    for part in reversed(parts):  # a keyword inside a name: my-train-data.csv, squad_dev_v2.json
        for word in re.split(r"[^a-z]+", part):
            if word in _SPLIT_ALIASES:
                return _SPLIT_ALIASES[word]
    return None


def _choose_files(repo_id: str, siblings: list[RepoSibling], split: str) -> list[RepoSibling]:
    data = [s for s in siblings
            if PurePosixPath(s.rfilename).suffix.lower() in SUPPORTED_EXTENSIONS
            and PurePosixPath(s.rfilename).name.lower() not in _NOT_DATA
            and not any(part.startswith(".") for part in PurePosixPath(s.rfilename).parts)]
    if not data:
        others = sorted(s.rfilename for s in siblings if s.rfilename not in (".gitattributes", "README.md"))
        listed = (f"; its files are {', '.join(others[:5])}{', ...' if len(others) > 5 else ''}"
                  if others else "; it holds no files besides its README")
        raise HubError(f"The Hub dataset {repo_id} has no data file in a format this studio reads "
                       f"({_FORMATS_TEXT}){listed}. Datasets built by a loading script or stored as archives "
                       f"cannot be imported directly: {_UPLOAD_INSTEAD}.")
    by_split = {s.rfilename: _split_of(s.rfilename) for s in data}
    if not any(by_split.values()):
        by_split = dict.fromkeys(by_split, "train")  # like `datasets`: files that name no split are 'train'
    want = _SPLIT_ALIASES.get(split.strip().lower(), split.strip().lower())
    chosen = sorted((s for s in data if by_split[s.rfilename] == want), key=lambda s: s.rfilename)
    if not chosen:
        found = {name for name in by_split.values() if name}
        ordered = [n for n in _SPLIT_ORDER if n in found] + sorted(found - set(_SPLIT_ORDER))
        raise HubError(f"The Hub dataset {repo_id} has no '{split}' split. Its splits are: "
                       f"{', '.join(ordered)}. Pick one of those.")
    return chosen


def _check_size(repo_id: str, split: str, total: int, files: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise HubError(
            f"The '{split}' split of the Hub dataset {repo_id} is {human_size(total)} in {files} file"
            f"{'s' if files != 1 else ''}, over the {human_size(max_bytes)} import limit. Seeds are a few "
            "hundred rows at most: pick a smaller dataset or split, save the rows you want as a Parquet/JSONL/"
            "CSV file and upload that, or raise SEED_STUDIO_MAX_UPLOAD_MB.")


def _concat(tables: list[RawTable], source: str) -> RawTable:
    if len(tables) == 1:
        return dataclasses.replace(tables[0], source=source)
    columns: dict[str, None] = {}
    origins: list[str] = []
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    problems: dict[int, str] = {}
    labels: dict[str, list[str]] = {}
    for table in tables:
        columns.update(dict.fromkeys(table.columns))
        problems.update({len(rows) + row: text for row, text in table.row_problems.items()})
        origins += [f"{table.source}, {table.origin(i + 1) or f'row {i + 1}'}" for i in range(len(table.rows))]
        notes += [n for n in table.notes if n not in notes]
        rows.extend(table.rows)
        for col, names in table.label_names.items():
            labels.setdefault(col, names)
    first = tables[0]
    return RawTable(source, list(columns), rows, problems, labels, layout=first.layout, notes=notes,
                    origins=origins, hint=first.hint, chat_tree=first.chat_tree)


def _where(endpoint: str | None) -> str:
    """'' for the public Hub, else ' at host:port' (never userinfo a mirror URL might carry)."""
    if not endpoint:
        return ""
    return f" at {urlsplit(endpoint).netloc.rsplit('@', 1)[-1]}"


def _unreachable(repo_id: str, endpoint: str | None, why: str) -> str:
    return (f"The Hugging Face Hub{_where(endpoint)} cannot be reached from this machine ({why}), so the dataset "
            f"{repo_id} cannot be imported from it. Check the internet connection (and HTTPS_PROXY, if you use a "
            f"proxy), or {_UPLOAD_INSTEAD}.")


def _translate(exc: Exception, repo_id: str, endpoint: str | None) -> HubError | None:
    """A plain HubError for the ways the Hub client fails; None for anything else (a bug: let it surface)."""
    import httpx2
    from huggingface_hub.errors import (
        DisabledRepoError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    page = f"https://huggingface.co/datasets/{repo_id}"
    if isinstance(exc, GatedRepoError):  # before RepositoryNotFoundError: it is a subclass
        return HubError(f"The Hub dataset {repo_id} is gated: its owners approve each user, and no token that "
                        f"has been granted access was sent. Open {page}, accept its conditions while logged in, "
                        "then set HF_TOKEN to an access token of that account "
                        "(https://huggingface.co/settings/tokens) and try again.")
    if isinstance(exc, DisabledRepoError):
        return HubError(f"The Hub dataset {repo_id} has been disabled by the Hub and cannot be downloaded. "
                        "Pick another dataset.")
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(f"The Hub dataset {repo_id} was not found. Check the spelling ({_ID_EXAMPLE}; it is the "
                        "part of the dataset page's address after huggingface.co/datasets/). If the dataset is "
                        "private or gated, set HF_TOKEN to an access token that can read it.")
    if isinstance(exc, (RevisionNotFoundError, RemoteEntryNotFoundError)):
        return HubError(f"The Hub dataset {repo_id} changed while it was being downloaded (a file or revision "
                        "disappeared). Try again in a moment.")
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            return HubError(f"The Hub rejected the access token used for {repo_id} (it is invalid or expired). "
                            "Create a new read token at https://huggingface.co/settings/tokens, set HF_TOKEN to "
                            "it, and try again.")
        if status == 403:
            return HubError(f"The access token in use may not read the Hub dataset {repo_id}. Give the token "
                            "read access to it (https://huggingface.co/settings/tokens), or use another token.")
        if status == 429:
            return HubError(f"The Hub is rate-limiting downloads from this machine, so {repo_id} cannot be "
                            "imported now. Wait a few minutes and try again, or set HF_TOKEN to raise the limit.")
        if status is not None and status >= 500:
            return HubError(f"The Hub is having trouble (HTTP {status}) and could not serve {repo_id}. Try "
                            f"again in a few minutes, or {_UPLOAD_INSTEAD}.")
        return HubError(f"The Hub refused the request for {repo_id} (HTTP {status}). Check the dataset id and "
                        f"try again, or {_UPLOAD_INSTEAD}.")
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(_unreachable(repo_id, endpoint, "offline mode is on: HF_HUB_OFFLINE is set"))
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):
        return HubError(_unreachable(repo_id, endpoint, "the connection timed out"))
    if isinstance(exc, (httpx2.HTTPError, httpx2.InvalidURL, ConnectionError, LocalEntryNotFoundError)):
        # LocalEntryNotFoundError: a file's metadata could not be fetched and no cached copy exists.
        return HubError(_unreachable(repo_id, endpoint, "no connection"))
    if isinstance(exc, OSError):  # disk full, unwritable cache, a download cut short
        return HubError(f"Downloading the Hub dataset {repo_id} failed ({exc.strerror or exc}). Check free disk "
                        "space (the cache is HF_HUB_CACHE, under HF_HOME) and try again.")
    return None

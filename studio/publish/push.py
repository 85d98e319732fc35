"""Push a run's adapter (or merged / full model) and a dataset version to the Hub, each with its card.

    pub = push_adapter(ws, run_id, "alice/support-lora", token=token)             # private by default
    pub = push_adapter(ws, run_id, "support-lora", token=token, merged=True)     # + alice/support-lora-merged
    pub = push_dataset(ws, version_id, "alice/support-data", token=token)
    list_publications(ws, project_id)                                            # newest first

Order of a push, so that nothing is half done: check the run / version and the repo name (no request yet),
ask the Hub whose token it is, refuse a namespace the account cannot write to, prepare every file in a
temporary folder (outside the workspace: nothing local changes), create the repo (exist_ok), upload all files
in ONE commit, and only then write the `publication` row. Any failure raises a plain HubError and writes no row.

Re-pushing a run replaces the same file names in a new commit (no commit at all when nothing changed: the
client skips identical files, and the publication row then records the existing commit): the repo never holds
duplicates, and files of an earlier push that this push no longer has (a weights file renamed by a newer
library) are deleted. An existing repo keeps its visibility; the row records the repo's actual one.
If the adapter went up but the merged model failed, the adapter's row is written and the HubError says so.
A dataset push uses `datasets`' push_to_hub (one Parquet file set per split, old shards removed), then one more
commit writes README.md: the studio's dataset card with push_to_hub's `configs` / `dataset_info` metadata.

The merged model (merged=True) goes to its own repo `<repo>-merged` with its own card: a full model is loaded
with AutoModelForCausalLM.from_pretrained(repo), which a `merged/` folder inside the adapter repo would break,
and the Hub shows each repo's type (adapter vs model) correctly.

Transient failures (429, 5xx, dropped connections) are retried with backoff per step (hub_errors.with_retries).
The token only travels in the Authorization header: it is never written to the workspace, a card, a pushed
file, a log or a message.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from studio.errors import HubError
from studio.publish.auth import Account, account, require_token
from studio.publish.hub_errors import NOTHING_LOST, PushContext, with_retries
from studio.publish.model_card import base_label, card_kind, model_card, public_base_id
from studio.publish.repos import validate_repo_id, with_suffix
from studio.workspace import Workspace, utc_now

Progress = Callable[[float, str], None]

MERGED_SUFFIX = "-merged"
KINDS = ("adapter", "model", "merged", "dataset")
# Files of a saved adapter / model folder that are published. Not training_args.bin (a pickle of the trainer's
# arguments: local paths, and a hub token when one was configured), not the library's stub README.md.
_PUBLISHED_SUFFIXES = (".json", ".safetensors", ".txt", ".jinja", ".model", ".tiktoken")
_PUBLISHED_BIN = ("adapter_model.bin", "pytorch_model")
_NEVER = {"training_args.bin", "README.md", "run.json"}
# What a re-push may delete on the Hub when this push no longer has it: files a push of ours writes.
_OWNED_PATTERNS = ["*.safetensors", "*.bin", "*.json", "*.txt", "*.jinja", "*.model", "*.tiktoken", "*.gguf",
                   "Modelfile"]
_PATH_KEYS = {"base_model_name_or_path", "_name_or_path", "name_or_path"}
# Token tables: their strings are tokens ("/", "//"...), never paths; published exactly as saved.
_VERBATIM_JSON = {"tokenizer.json", "vocab.json", "added_tokens.json"}
_DATASETS_ENDPOINT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Publication:
    """One successful push: what went where, at which commit."""

    id: int
    project_id: int
    kind: str
    """adapter, model (a full fine-tune), merged or dataset."""
    subject_id: int
    """The run id (adapter, model, merged) or the dataset version id (dataset)."""
    repo_id: str
    revision: str
    """The commit sha the push made."""
    url: str
    created_at: str
    private: bool
    files: list[str] = field(default_factory=list)
    message: str = ""
    account: str = ""
    merged: Publication | None = None
    """With push_adapter(merged=True): the merged model's publication."""

    @property
    def repo_type(self) -> str:
        return "dataset" if self.kind == "dataset" else "model"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["merged"] = self.merged.to_dict() if self.merged else None
        return data


# ------------------------------------------------------------------------------------------------ public API


def push_adapter(ws: Workspace, run_id: int, repo_id: str, *, token: str | None, private: bool = True,
                 merged: bool = False, endpoint: str | None = None, progress: Progress | None = None,
                 dataset_repo: str | None = None, exports: bool = True) -> Publication:
    """Push run `run_id`'s adapter (a full fine-tune: its model) with a model card to `repo_id`.

    merged=True also pushes the adapter merged into its base model to `<repo_id>-merged`.
    exports=True also pushes the run's export files (GGUF, Modelfile: studio.export) beside the adapter; a
    re-push without them removes them from the repo, so the repo mirrors what was asked.
    `dataset_repo` names the Hub dataset the card links to (push_dataset's repo).
    """
    from studio.train.runs import get_run

    report = _reporter(progress)
    run = get_run(ws, run_id)
    folder = _publishable_folder(run)
    kind = card_kind(run)
    merged = merged and kind == "adapter"  # a full fine-tune is already a whole model
    _check_name(repo_id, suffix=MERGED_SUFFIX if merged else "")
    dataset_repo = (dataset_repo or "").strip() or None
    if dataset_repo:
        _check_name(dataset_repo)
    token = require_token(token)

    report(0.02, "Checking the access token")
    acct = account(token, endpoint)
    repo = validate_repo_id(repo_id, acct.name)
    if dataset_repo:  # a bare dataset name is the signed-in account's, like the repo's
        dataset_repo = validate_repo_id(dataset_repo, acct.name)
    _check_may_write(acct, repo, endpoint)
    merged_repo = with_suffix(repo, MERGED_SUFFIX) if merged else None

    stage = Path(tempfile.mkdtemp(prefix="seed-studio-push-"))
    try:
        report(0.08, "Preparing the files and the model card")
        files = stage_model(folder, stage / "main", run)
        export_names = _stage_exports(run, stage / "main") if exports and kind == "adapter" else []
        files += export_names
        _write_text(stage / "main" / "README.md", model_card(ws, run_id, repo, dataset_repo=dataset_repo, kind=kind,
                                                             exports=export_names))
        merged_files: list[str] = []
        if merged_repo:
            report(0.15, "Merging the adapter into the base model (this takes a while for large models)")
            merged_dir = _merge(ws, run, stage / "merge")
            merged_files = stage_model(merged_dir, stage / "merged", run)
            _write_text(stage / "merged" / "README.md",
                        model_card(ws, run_id, merged_repo, dataset_repo=dataset_repo, kind="merged"))

        ctx = PushContext(repo, "model", acct.name, endpoint)
        main_sha, main_private = _upload_folder(stage / "main", ctx, token, private, report,
                                                (0.3, 0.6 if merged_repo else 0.95),
                                                f"Seed Studio: run {run.id} ({run.title})")
        adapter_files = sorted([*files, "README.md"])
        if not merged_repo:
            report(1.0, f"Pushed to {repo}")
            return _record(ws, run.project_id, kind, run.id, repo, main_sha, endpoint, main_private,
                           adapter_files, acct.name)
        try:
            mctx = PushContext(merged_repo, "model", acct.name, endpoint)
            merged_sha, merged_private = _upload_folder(stage / "merged", mctx, token, private, report, (0.6, 0.95),
                                                        f"Seed Studio: run {run.id} merged into its base")
        except HubError as exc:
            # The adapter is on the Hub: record it (that push did happen), and say what is missing.
            _record(ws, run.project_id, kind, run.id, repo, main_sha, endpoint, main_private, adapter_files,
                    acct.name)
            raise HubError(f"The adapter was pushed to {repo}, but the merged model was not: "
                           f"{str(exc).replace(NOTHING_LOST + '.', '').strip()} Push again to add it.") from None
        report(1.0, f"Pushed to {repo} and {merged_repo}")
        merged_pub = _record(ws, run.project_id, "merged", run.id, merged_repo, merged_sha, endpoint, merged_private,
                             sorted([*merged_files, "README.md"]), acct.name)
        main = _record(ws, run.project_id, kind, run.id, repo, main_sha, endpoint, main_private, adapter_files,
                       acct.name)
        return replace(main, merged=merged_pub)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def push_dataset(ws: Workspace, version_id: int, repo_id: str, *, token: str | None, private: bool = True,
                 endpoint: str | None = None, progress: Progress | None = None) -> Publication:
    """Push dataset version `version_id` (its splits as they are) with its dataset card to `repo_id`."""
    from studio.data.export import to_dataset_dict
    from studio.data.versions import get_version_by_id

    report = _reporter(progress)
    version = get_version_by_id(ws, version_id)
    if not version.total:
        raise HubError(f"Dataset version {version.name} has no rows, so there is nothing to push.")
    _check_name(repo_id)
    token = require_token(token)

    report(0.02, "Checking the access token")
    acct = account(token, endpoint)
    repo = validate_repo_id(repo_id, acct.name)
    _check_may_write(acct, repo, endpoint)

    report(0.1, "Preparing the splits and the dataset card")
    dataset = to_dataset_dict(ws, version_id)
    card = _hub_dataset_card(ws, version_id, repo)
    ctx = PushContext(repo, "dataset", acct.name, endpoint)
    api = _api(endpoint, token)

    report(0.2, "Creating the dataset repo")
    with_retries(lambda: api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True), ctx)
    report(0.3, f"Uploading {len(dataset)} splits ({version.total} rows)")
    with _datasets_endpoint(endpoint):
        with_retries(lambda: dataset.push_to_hub(repo, private=private, token=token,
                                                 commit_message=f"Seed Studio: dataset version {version.name}"),
                     ctx)
    from studio.data.export import preferences_dataset_dict

    pairs = preferences_dataset_dict(ws, version_id)
    if pairs is not None:
        report(0.7, "Uploading the preference pairs")
        with _datasets_endpoint(endpoint):
            with_retries(lambda: pairs.push_to_hub(repo, config_name="preferences", private=private, token=token,
                                                   commit_message=f"Seed Studio: preference pairs of version "
                                                   f"{version.name}"), ctx)
    report(0.8, "Writing the dataset card")

    def write_card() -> Any:
        pushed = _pushed_metadata(api, repo)
        return api.upload_file(path_or_fileobj=_merge_card(card, pushed).encode("utf-8"), path_in_repo="README.md",
                               repo_id=repo, repo_type="dataset",
                               commit_message=f"Seed Studio: dataset card of version {version.name}")

    commit = with_retries(write_card, ctx)
    files = sorted(_repo_files(api, repo, "dataset", commit.oid))
    report(1.0, f"Pushed to {repo}")
    return _record(ws, version.project_id, "dataset", version.id, repo, commit.oid, endpoint,
                   _is_private(api, repo, "dataset", private), files, acct.name)


def list_publications(ws: Workspace, project_id: int) -> list[Publication]:
    """Every push of the project, newest first."""
    with ws.read() as conn:
        rows = conn.execute("SELECT * FROM publication WHERE project_id = ? ORDER BY created_at DESC, id DESC",
                            (project_id,)).fetchall()
    return [_publication(r) for r in rows]


# ---------------------------------------------------------------------------------------------- checks


def _reporter(progress: Progress | None) -> Progress:
    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(max(0.0, min(1.0, fraction)), message)

    return report


def _check_name(repo_id: str, suffix: str = "") -> None:
    """The name's rules, before any request (a bare name is checked under a stand-in owner)."""
    checked = validate_repo_id(repo_id, "owner")
    if suffix:
        with_suffix(checked, suffix)


def _check_may_write(acct: Account, repo: str, endpoint: str | None) -> None:
    namespace = repo.split("/", 1)[0]
    where = PushContext(repo, endpoint=endpoint).where
    if acct.role == "read":
        raise HubError(f"The access token of {acct.name} is read-only, so it cannot create or change repos on "
                       f"{where}. Create a token with write access at https://huggingface.co/settings/tokens, "
                       f"set HF_TOKEN to it, and try again. {NOTHING_LOST}.")
    if not acct.may_write_to(namespace):
        mine = ", ".join((acct.name, *acct.orgs))
        raise HubError(f"'{namespace}' is not the signed-in account ({acct.name}) nor one of its organizations, so "
                       f"{repo} cannot be pushed to with this token. Use a repo under {mine} (for example "
                       f"{acct.name}/{repo.split('/', 1)[1]}). {NOTHING_LOST}.")


def _publishable_folder(run: Any) -> Path:
    from studio.errors import TrainError

    if run.status in ("queued", "running", "stopping"):
        raise TrainError(f"Run {run.id} is still {run.status}. Push it once it is done.")
    folder = Path(run.output_dir or "") / "adapter"
    marker = "adapter_config.json" if run.method in ("lora", "qlora") else "config.json"
    if not run.output_dir or not (folder / marker).is_file():
        what = "adapter" if marker.startswith("adapter") else "model"
        raise TrainError(f"Run {run.id} ({run.status}) has no saved {what} to push. Push a run that finished (or "
                         "was stopped after saving).")
    return folder


# ---------------------------------------------------------------------------------------------- files


def stage_model(folder: Path, dest: Path, run: Any) -> list[str]:
    """Copy the publishable files of a saved adapter / model folder into `dest`; local paths in JSON replaced."""
    dest.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if not path.is_file() or name.startswith(".") or name in _NEVER:
            continue
        if not (name.endswith(_PUBLISHED_SUFFIXES) or (name.endswith(".bin") and name.startswith(_PUBLISHED_BIN))):
            continue
        public = _public_json(path, run) if name.endswith(".json") else None
        if public is not None:
            _write_text(dest / name, public)
        else:
            shutil.copyfile(path, dest / name)
        names.append(name)
    return names


def _stage_exports(run: Any, dest: Path) -> list[str]:
    """Links to the run's export files (GGUF can be gigabytes: linked, not copied; the upload reads through)."""
    from studio.export.run_export import exported_files

    names = []
    for path in exported_files(run):
        (dest / path.name).symlink_to(path.resolve())
        names.append(path.name)
    return names


def _public_json(path: Path, run: Any) -> str | None:
    """A JSON config with local paths replaced (the base model by its Hub id or folder name, other paths of this
    machine by their last part); None when nothing needed replacing (the file is then copied byte for byte)."""
    if path.name in _VERBATIM_JSON:
        return None
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        return None
    base = public_base_id(run.base_model_ref) or Path(str(run.base_model_ref)).name
    changed = False

    def clean(value: Any, key: str = "") -> Any:
        nonlocal changed
        if isinstance(value, dict):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and _looks_local(value, key in _PATH_KEYS):
            changed = True
            return base if key in _PATH_KEYS else Path(value).name
        return value

    cleaned = clean(data)
    return json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n" if changed else None


def _looks_local(text: str, path_key: bool) -> bool:
    """A path of this machine: for a *_name_or_path key anything path-shaped, elsewhere only a path that exists."""
    if not text or "\n" in text or len(text) > 4096:
        return False
    shaped = text.startswith(("/", "~", "./", "../", "\\")) or (len(text) > 2 and text[1] == ":" and text[2] in "/\\")
    if path_key:
        return shaped or (os.sep in text and Path(text).exists())
    return shaped and len(Path(text).parts) > 2 and Path(text).expanduser().exists()


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _merge(ws: Workspace, run: Any, work: Path) -> Path:
    """The adapter merged into its base, written under `work` (a temporary folder): the run's folder is left
    as it is. A merge the run already made (merge_after) is reused."""
    from studio.train.merge import MERGED, merge_and_save

    existing = Path(run.output_dir) / MERGED
    if (existing / "config.json").is_file():
        return existing
    from studio.models.loading import local_model_path

    base_path = local_model_path(run.base_model_ref, ws.models_dir)
    adapter = work / "adapter"  # links to the run's files, plus the base's tokenizer when the run saved none
    adapter.mkdir(parents=True, exist_ok=True)
    source = Path(run.output_dir) / "adapter"
    for path in source.iterdir():
        (adapter / path.name).symlink_to(path)
    if not (source / "tokenizer_config.json").is_file():
        for path in Path(base_path).iterdir():
            if path.is_file() and path.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "chat_")):
                (adapter / path.name).symlink_to(path)
    return merge_and_save({"output_dir": str(work), "base_model_ref": run.base_model_ref, "method": run.method},
                          models_dir=ws.models_dir, base_path=Path(base_path))


# ---------------------------------------------------------------------------------------------- the Hub


def _api(endpoint: str | None, token: str) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token)


def _upload_folder(folder: Path, ctx: PushContext, token: str, private: bool, report: Progress,
                   span: tuple[float, float], message: str) -> tuple[str, bool]:
    """create_repo (exist_ok) + every file of `folder` in one commit; returns (commit sha, private)."""
    api = _api(ctx.endpoint, token)
    start, end = span
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    report(start, f"Creating the repo {ctx.repo_id}")
    with_retries(lambda: api.create_repo(ctx.repo_id, repo_type="model", private=private, exist_ok=True), ctx)
    report(start + (end - start) * 0.1, f"Uploading {len(files)} files ({_size(size)}) to {ctx.repo_id}")
    commit = with_retries(lambda: api.upload_folder(repo_id=ctx.repo_id, repo_type="model", folder_path=str(folder),
                                                    commit_message=message, delete_patterns=_OWNED_PATTERNS), ctx)
    report(end, f"Uploaded to {ctx.repo_id}")
    return commit.oid, _is_private(api, ctx.repo_id, "model", private)


def _is_private(api: Any, repo: str, repo_type: str, asked: bool) -> bool:
    """The repo's actual visibility (an existing repo keeps its own); what was asked when the Hub does not say."""
    try:
        info = api.repo_info(repo, repo_type=repo_type)
    except Exception:  # best effort: the push itself succeeded
        return asked
    return bool(info.private) if info.private is not None else asked


def _repo_files(api: Any, repo: str, repo_type: str, revision: str) -> list[str]:
    try:
        return [f for f in api.list_repo_files(repo, repo_type=repo_type, revision=revision) if f != ".gitattributes"]
    except Exception:  # best effort: the push itself succeeded
        return []


@contextlib.contextmanager
def _datasets_endpoint(endpoint: str | None) -> Iterator[None]:
    """`datasets` reads its Hub endpoint from a module constant (HF_ENDPOINT at import); point it at `endpoint`
    for the push. A lock keeps two pushes to different endpoints from crossing."""
    if not endpoint:
        yield
        return
    from datasets import config

    with _DATASETS_ENDPOINT_LOCK:
        saved = config.HF_ENDPOINT, config.HUB_DATASETS_URL
        config.HF_ENDPOINT = endpoint.rstrip("/")
        config.HUB_DATASETS_URL = config.HF_ENDPOINT + "/datasets/{repo_id}/resolve/{revision}/{path}"
        try:
            yield
        finally:
            config.HF_ENDPOINT, config.HUB_DATASETS_URL = saved


def _hub_dataset_card(ws: Workspace, version_id: int, repo: str) -> str:
    """The version's dataset card, its 'How to load' section written for the Hub repo."""
    from studio.data.card import dataset_card

    card = dataset_card(ws, version_id)
    start, end = card.find("## How to load"), card.find("## License")
    if start != -1 and end > start:
        card = card[:start] + "\n".join(["## How to load", "", "```python", "from datasets import load_dataset", "",
                                         f'ds = load_dataset("{repo}")', "```", "", ""]) + card[end:]
    return card


def _pushed_metadata(api: Any, repo: str) -> dict[str, Any]:
    """The YAML metadata push_to_hub wrote into README.md (configs, dataset_info); {} when there is none."""
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo, "README.md", repo_type="dataset", endpoint=api.endpoint, token=api.token)
    return _split_card(Path(path).read_text(encoding="utf-8"))[0]


def _split_card(text: str) -> tuple[dict[str, Any], str]:
    import yaml

    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            meta = yaml.safe_load(text[3:end]) or {}
            return (meta if isinstance(meta, dict) else {}), text[end + 4:].lstrip("\n")
    return {}, text


def _merge_card(card: str, pushed: dict[str, Any]) -> str:
    """Our card with push_to_hub's `configs` and `dataset_info` (they describe the files it wrote)."""
    import yaml

    meta, body = _split_card(card)
    meta.pop("configs", None)  # ours describes an export folder (train.parquet ...), not the pushed shards
    for key in ("configs", "dataset_info"):
        if key in pushed:
            meta[key] = pushed[key]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def _size(n: int) -> str:
    from studio.data.readers import human_size

    return human_size(n)


# ---------------------------------------------------------------------------------------------- rows


def _repo_url(endpoint: str | None, repo: str, kind: str) -> str:
    from huggingface_hub import constants

    parts = urlsplit(endpoint or constants.ENDPOINT)  # HF_ENDPOINT when no endpoint was given
    base = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path.rstrip('/')}"
    return f"{base}/{'datasets/' if kind == 'dataset' else ''}{repo}"


def _record(ws: Workspace, project_id: int, kind: str, subject_id: int, repo: str, sha: str, endpoint: str | None,
            private: bool, files: list[str], account_name: str) -> Publication:
    url = _repo_url(endpoint, repo, kind)
    message = f"Pushed {kind} to {repo} ({'private' if private else 'public'}), commit {sha[:12]}."
    now = utc_now()
    with ws.write() as conn:
        pub_id = conn.execute(
            "INSERT INTO publication(project_id, kind, subject_id, repo_id, revision, url, created_at, private, files, "
            "message, account) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (project_id, kind, subject_id, repo, sha, url, now, int(private), json.dumps(files), message,
             account_name)).lastrowid
    return Publication(int(pub_id), project_id, kind, subject_id, repo, sha, url, now, private, files, message,
                       account_name)


def _publication(row: Any) -> Publication:
    try:
        files = json.loads(row["files"] or "[]")
    except ValueError:
        files = []
    return Publication(row["id"], row["project_id"], row["kind"], row["subject_id"], row["repo_id"], row["revision"],
                       row["url"], row["created_at"], bool(row["private"]), files, row["message"], row["account"])


__all__ = ["Publication", "base_label", "list_publications", "push_adapter", "push_dataset"]

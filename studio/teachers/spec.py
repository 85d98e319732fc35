"""Which teacher a batch uses, as plain data that can be stored with the batch (never with a secret).

A teacher is written the same way in the UI, the CLI and the database:

- a model ref (`embedded:smollm2-135m-instruct`, a local folder, a Hub id): a `LocalTeacher`;
- `run:<id>`: a finished fine-tuning run of this workspace (base model + its LoRA adapter), so the
  model trained in one round can write the data of the next;
- an `http(s)://` URL: an OpenAI-compatible endpoint, with the model name beside it, or written in one
  string as `MODEL@URL` (`llama3.1:8b@http://localhost:11434/v1`), which is how a project stores it.

API keys are passed to `build_teacher` by the caller (from the environment or the UI session); the
spec and the workspace never hold one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from studio.errors import TeacherError
from studio.teachers.base import Teacher
from studio.workspace import Workspace

RUN_PREFIX = "run:"
FINISHED_RUN_STATUSES = ("done", "finished", "completed", "stopped")


@dataclass(frozen=True)
class TeacherSpec:
    kind: Literal["local", "endpoint"]
    ref: str = ""
    """Local: a model ref or run:<id>. Endpoint: empty."""
    base_url: str = ""
    model: str = ""
    """Endpoint: the model name the server expects (empty: the server's first model)."""
    batch_size: int = 16
    concurrency: int = 4
    timeout: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TeacherSpec:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def label(self) -> str:
        if self.kind == "endpoint":
            return f"{self.model}@{self.base_url}" if self.model else self.base_url
        return self.ref


def parse_teacher(text: str, *, model: str = "", batch_size: int = 16, concurrency: int = 4,
                  timeout: float = 60.0) -> TeacherSpec:
    text = (text or "").strip()
    if not text:
        raise TeacherError("No teacher chosen. Pick a local model, a finished run, or an endpoint URL.")
    name, at, url = text.rpartition("@")
    if at and url.startswith(("http://", "https://")) and "://" not in name:
        text, model = url, model or name
    if text.startswith(("http://", "https://")):
        return TeacherSpec("endpoint", base_url=public_url(text), model=model.strip(), concurrency=concurrency,
                           timeout=timeout)
    if model.strip():
        raise TeacherError("A model name goes with an endpoint URL only; for a local teacher the model ref "
                           "alone says which model it is.")
    return TeacherSpec("local", ref=text, batch_size=batch_size)


def build_teacher(ws: Workspace, spec: TeacherSpec, *, api_key: str | None = None) -> Teacher:
    """A ready teacher (local ones load their weights on first use)."""
    if not 1 <= spec.batch_size <= 256:
        raise TeacherError(f"Batch size must be between 1 and 256 (got {spec.batch_size}).")
    if not 1 <= spec.concurrency <= 64:
        raise TeacherError(f"Parallel requests must be between 1 and 64 (got {spec.concurrency}).")
    if spec.kind == "endpoint":
        from studio.teachers.endpoint import EndpointTeacher, api_key_from_env

        return EndpointTeacher(spec.base_url, spec.model, api_key=api_key_from_env(api_key),
                               concurrency=spec.concurrency, timeout=spec.timeout)
    from studio.teachers.local import LocalTeacher

    ref = spec.ref
    if ref.startswith(RUN_PREFIX):
        ref = str(run_adapter_dir(ws, ref))
    else:
        from studio.models.registry import resolve

        resolve(ref, ws.models_dir)  # raises ModelRefError with advice for a ref that names nothing
    return LocalTeacher(ref, ws.models_dir, batch_size=spec.batch_size)


def try_teacher(ws: Workspace, spec: TeacherSpec, *, api_key: str | None = None) -> str:
    """One tiny request: a plain sentence saying the teacher answered, or TeacherError/ModelRefError why not."""
    import time

    from studio.teachers.base import GenerationParams

    teacher = build_teacher(ws, spec, api_key=api_key)
    if spec.kind == "endpoint":
        return teacher.test_connection()  # type: ignore[attr-defined]
    start = time.monotonic()
    answer = teacher.generate([[{"role": "user", "content": "Say OK."}]], GenerationParams(8, 0.0, 1.0))[0]
    return f"{spec.label} loaded and answered in {time.monotonic() - start:.1f} s: {answer.strip()[:60]!r}"


def run_adapter_dir(ws: Workspace, ref: str) -> Path:
    """The adapter folder of a finished run `run:<id>`, or TeacherError saying why it cannot teach."""
    try:
        run_id = int(ref.removeprefix(RUN_PREFIX))
    except ValueError:
        raise TeacherError(f"'{ref}' is not a run reference; write run:<number>, e.g. run:3.") from None
    with ws.read() as conn:
        row = conn.execute("SELECT id, status, output_dir FROM run WHERE id=?", (run_id,)).fetchone()
    if row is None:
        raise TeacherError(f"There is no run {run_id} in this workspace. The Train tab lists the runs.")
    if row["status"] not in FINISHED_RUN_STATUSES:
        raise TeacherError(f"Run {run_id} is {row['status']}; only a finished run can be a teacher.")
    folder = _adapter_folder(Path(row["output_dir"])) if row["output_dir"] else None
    if folder is None:
        raise TeacherError(f"Run {run_id} has no saved adapter (adapter_config.json) in its output folder.")
    return folder


def finished_runs(ws: Workspace, project_id: int) -> list[tuple[str, str]]:
    """(ref, title) for every run of the project that can teach."""
    marks = ",".join("?" * len(FINISHED_RUN_STATUSES))
    with ws.read() as conn:
        rows = conn.execute(f"SELECT id, base_model_ref, method, output_dir FROM run WHERE project_id=? "
                            f"AND status IN ({marks}) ORDER BY id DESC", (project_id, *FINISHED_RUN_STATUSES))
        rows = rows.fetchall()
    out = []
    for r in rows:
        if r["output_dir"] and _adapter_folder(Path(r["output_dir"])):
            out.append((f"{RUN_PREFIX}{r['id']}", f"Run {r['id']}: {r['method']} on {r['base_model_ref']}"))
    return out


def _adapter_folder(output_dir: Path) -> Path | None:
    for folder in (output_dir / "adapter", output_dir):
        if (folder / "adapter_config.json").is_file():
            return folder
    return None


def public_url(url: str) -> str:
    """The URL without credentials: user:password@ and query strings (`?api_key=`) never get stored."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def describe_spec(spec: TeacherSpec) -> dict[str, Any]:
    """What a batch records about its teacher: everything but secrets."""
    data = spec.to_dict()
    if data["base_url"]:
        data["base_url"] = public_url(data["base_url"])
    json.dumps(data)  # must stay plain JSON
    return data

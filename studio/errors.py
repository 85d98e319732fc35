"""Errors a user can cause. Each carries a plain-language message: what was wrong and what to do.

The UI shows `str(error)` with gr.Error / gr.Warning; the CLI prints it and exits 2.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base for every error caused by user input or the user's environment."""


class InputFileError(StudioError):
    """An uploaded file cannot be read as seeds (empty, binary, wrong encoding, broken JSON, too big)."""


class MappingError(StudioError):
    """The columns of a file do not map onto a seed format."""


class NoUsableRowsError(StudioError):
    """A file was read, but every row has a problem."""


class HubError(StudioError):
    """The Hugging Face Hub cannot be reached, or the dataset/model is not there."""


class ProjectError(StudioError):
    """A project is missing, or its name is taken or invalid."""


class SeedError(StudioError):
    """A seed edit or delete cannot be applied."""


class ModelRefError(StudioError):
    """A model reference does not resolve to anything usable here."""


class TeacherError(StudioError):
    """A teacher cannot be reached, refuses, times out, or is misconfigured."""


class TemplateError(StudioError):
    """A prompt template has a syntax error or uses a variable the strategy does not provide."""


class GenerationError(StudioError):
    """A generation request cannot run as asked (bad count, strategy unfit for the seeds, no batch)."""


class QualityError(StudioError):
    """Filter settings, judge scoring or a diversity report cannot run as asked (bad threshold, no rows)."""


class ReviewError(StudioError):
    """A review action cannot be applied (no sample yet, unknown verdict or tag, invalid edit, bad gate setting)."""


class DatasetVersionError(StudioError):
    """A dataset version cannot be frozen or exported as asked (too few seeds, bad fractions, unknown version)."""


class TrainError(StudioError):
    """A training run cannot start or go on as asked (bad setting, empty dataset, model or method unusable, OOM)."""


class ExportError(StudioError):
    """A run cannot be exported as asked (GGUF, Ollama, vLLM): unsupported model, unservable adapter, no space."""

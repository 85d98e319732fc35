"""Every training setting, defined once.

`TrainConfig` is the single definition. Each field carries its metadata (title, plain-words help,
unit, bounds or choices, advanced flag, CLI flag) in `dataclasses.field(metadata={"setting": ...})`,
in the spirit of H2O LLM Studio's python configs. The Train tab, the `seed-studio train` CLI and the
settings table of docs/TRAINING.md (`settings_markdown`) are all built from `SETTING_FIELDS`, so they
cannot drift apart.

Defaults suit a 135M-1B model fine-tuned with LoRA on 50-500 rows; they equal the Balanced preset.
Light module: no torch, no transformers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from studio.errors import TrainError
from studio.train.presets import FULL_FINE_TUNE_LR_FACTOR, PRESETS

Method = Literal["qlora", "lora", "full"]
Scheduler = Literal["cosine", "linear", "constant"]
SettingKind = Literal["choice", "float", "int", "bool", "modules"]

METHODS: tuple[str, ...] = ("qlora", "lora", "full")
OBJECTIVES: tuple[str, ...] = ("sft", "dpo", "orpo")
PREFERENCE_OBJECTIVES: tuple[str, ...] = ("dpo", "orpo")
PREFERENCE_LR_FACTOR = 0.25
"""Learning from preferences wants a smaller step than from examples (TRL's DPO examples use 5e-6 for full
models and about 5e-5 for LoRA): presets scale their rate by this for dpo and orpo."""
SCHEDULERS: tuple[str, ...] = ("cosine", "linear", "constant")
ALL_LINEAR = "all-linear"
"""target_modules value meaning every linear layer except the output head (what PEFT understands)."""


@dataclass(frozen=True)
class Setting:
    """Metadata of one training setting, as the UI, CLI and docs show it."""

    title: str
    help: str
    cli: str
    """CLI flag, e.g. "--learning-rate"."""
    kind: SettingKind
    group: str
    advanced: bool = False
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    step: float | None = None
    """A sensible UI increment (sliders / number boxes); None lets the UI decide."""


@dataclass(frozen=True)
class SettingField:
    """One entry of `SETTING_FIELDS`: the field name, its default and its `Setting` metadata."""

    name: str
    default: Any
    setting: Setting

    # Shortcuts so callers can write field.title instead of field.setting.title.
    @property
    def title(self) -> str:
        return self.setting.title

    @property
    def help(self) -> str:
        return self.setting.help

    @property
    def cli(self) -> str:
        return self.setting.cli

    @property
    def kind(self) -> SettingKind:
        return self.setting.kind

    @property
    def advanced(self) -> bool:
        return self.setting.advanced

    @property
    def minimum(self) -> float | None:
        return self.setting.minimum

    @property
    def maximum(self) -> float | None:
        return self.setting.maximum

    @property
    def choices(self) -> tuple[str, ...]:
        return self.setting.choices

    @property
    def unit(self) -> str:
        return self.setting.unit

    @property
    def group(self) -> str:
        return self.setting.group


def _setting(default: Any, **meta: Any) -> Any:
    """A dataclass field whose metadata holds the setting's `Setting` (defaults are all immutable)."""
    return field(default=default, metadata={"setting": Setting(**meta)})


@dataclass
class TrainConfig:
    """All settings of one training run. Build with defaults, `with_preset`, or `from_dict`; call `check()`."""

    method: str = _setting(
        "lora",
        title="Method",
        help=(
            "How the model learns. LoRA trains a small add-on (an adapter) and leaves the model itself "
            "untouched: fast, light, the usual choice. QLoRA is LoRA on a model squeezed to 4 bits: it "
            "needs the least memory and the bitsandbytes package. Full changes every weight of the model: "
            "it needs the most memory and is only offered for models up to 1.5B parameters."
        ),
        cli="--method",
        kind="choice",
        group="Basics",
        choices=METHODS,
    )
    preset: str = _setting(
        "balanced",
        title="Preset",
        help=(
            "A ready-made bundle of settings. Quick takes a few minutes and checks that everything works; "
            "Balanced is the usual choice; Thorough takes longest and is meant for the final model."
        ),
        cli="--preset",
        kind="choice",
        group="Basics",
        choices=tuple(PRESETS),
    )
    objective: str = _setting(
        "sft",
        title="Learn from",
        help=(
            "What the model learns from. Examples (SFT): it learns to write answers like the dataset's rows. "
            "Preferences (DPO): from pairs of a better and a worse answer to the same prompt (what reviewers "
            "kept vs rejected, edits, A/B votes), it learns to prefer the better kind; best started from a run "
            "that already learned from the examples. ORPO does both in one go, from the pairs alone. The "
            "preference methods need a dataset version frozen with preference pairs."
        ),
        cli="--objective",
        kind="choice",
        group="Basics",
        choices=OBJECTIVES,
    )
    learning_rate: float = _setting(
        2e-4,
        title="Learning rate",
        help=(
            "How big a step the model takes each time it learns from a batch. Too high and training "
            "becomes unstable; too low and it barely learns. 0.0002 suits LoRA and QLoRA; full fine-tuning "
            "wants about ten times less."
        ),
        cli="--learning-rate",
        kind="float",
        group="Basics",
        minimum=1e-7,
        maximum=1e-2,
        step=1e-5,
    )
    num_epochs: int = _setting(
        3,
        title="Epochs",
        help=(
            "How many times training goes over all your examples. More passes learn more but can start "
            "memorising the examples; early stopping ends training sooner when that happens."
        ),
        cli="--epochs",
        kind="int",
        group="Basics",
        unit="passes",
        minimum=1,
        maximum=50,
        step=1,
    )
    per_device_batch_size: int = _setting(
        4,
        title="Batch size",
        help=(
            "How many examples the model looks at together in one go on each CPU or GPU. Bigger batches "
            "need more memory; lower it first when training runs out of memory."
        ),
        cli="--batch-size",
        kind="int",
        group="Basics",
        unit="examples",
        minimum=1,
        maximum=256,
        step=1,
    )
    gradient_accumulation_steps: int = _setting(
        2,
        title="Gradient accumulation",
        help=(
            "Adds up this many batches before each learning step, so the model learns as if from one "
            "bigger batch without needing the memory for it. Batch size × this number = examples per step."
        ),
        cli="--grad-accum",
        kind="int",
        group="Basics",
        advanced=True,
        unit="batches",
        minimum=1,
        maximum=256,
        step=1,
    )
    max_seq_length: int = _setting(
        1024,
        title="Maximum length",
        help=(
            "The longest example, in tokens (pieces of words), the model reads during training; longer "
            "examples are cut. Longer limits need more memory and time. 1024 tokens is roughly 700 words."
        ),
        cli="--max-length",
        kind="int",
        group="Basics",
        unit="tokens",
        minimum=16,
        maximum=32768,
        step=16,
    )
    lora_r: int = _setting(
        16,
        title="LoRA rank",
        help=(
            "The size of the adapter LoRA trains. A bigger rank can learn more but needs a little more "
            "memory and can memorise small datasets. Powers of two (8, 16, 32) are usual."
        ),
        cli="--lora-r",
        kind="int",
        group="LoRA",
        advanced=True,
        minimum=1,
        maximum=256,
        step=1,
    )
    lora_alpha: int = _setting(
        32,
        title="LoRA alpha",
        help=(
            "How strongly the adapter's changes count. Usually twice the LoRA rank; if you change the rank, "
            "change this with it."
        ),
        cli="--lora-alpha",
        kind="int",
        group="LoRA",
        advanced=True,
        minimum=1,
        maximum=1024,
        step=1,
    )
    lora_dropout: float = _setting(
        0.05,
        title="LoRA dropout",
        help=(
            "The share of the adapter randomly switched off at each step, so it cannot lean on any one part. "
            "A little (0.05) helps against memorising small datasets."
        ),
        cli="--lora-dropout",
        kind="float",
        group="LoRA",
        advanced=True,
        unit="fraction",
        minimum=0.0,
        maximum=0.5,
        step=0.01,
    )
    # A str default (never a list), so the shared default cannot be mutated; ruff cannot see that.
    target_modules: list[str] | str = _setting(  # noqa: RUF009
        ALL_LINEAR,
        title="Layers to adapt",
        help=(
            "Which parts of the model get an adapter. 'all-linear' (every layer that multiplies by a weight "
            "matrix) works for almost every model; or list layer names separated by commas, like "
            "q_proj,v_proj."
        ),
        cli="--target-modules",
        kind="modules",
        group="LoRA",
        advanced=True,
    )
    weight_decay: float = _setting(
        0.0,
        title="Weight decay",
        help=(
            "Gently pulls the trained weights towards zero at every step, a brake on memorising. "
            "0 is fine for LoRA; try 0.01 for full fine-tuning."
        ),
        cli="--weight-decay",
        kind="float",
        group="Schedule",
        advanced=True,
        minimum=0.0,
        maximum=1.0,
        step=0.01,
    )
    warmup_ratio: float = _setting(
        0.05,
        title="Warm-up",
        help=(
            "The share of training spent slowly raising the learning rate from zero, so the first "
            "steps do not jolt the model."
        ),
        cli="--warmup-ratio",
        kind="float",
        group="Schedule",
        advanced=True,
        unit="fraction",
        minimum=0.0,
        maximum=0.5,
        step=0.01,
    )
    lr_scheduler: str = _setting(
        "cosine",
        title="Learning-rate schedule",
        help=(
            "How the learning rate changes after the warm-up. Cosine lowers it smoothly towards zero "
            "(the usual choice); linear lowers it in a straight line; constant keeps it the same."
        ),
        cli="--lr-scheduler",
        kind="choice",
        group="Schedule",
        advanced=True,
        choices=SCHEDULERS,
    )
    eval_every_steps: int = _setting(
        5,
        title="Check every",
        help=(
            "How often, in learning steps, the model is tested on the validation rows it never trains on. "
            "These checks draw the validation curve and drive early stopping and the overfitting alarm."
        ),
        cli="--eval-every",
        kind="int",
        group="Checks",
        unit="steps",
        minimum=1,
        maximum=100_000,
        step=1,
    )
    early_stopping_patience: int = _setting(
        3,
        title="Early stopping patience",
        help=(
            "Stop training when the validation loss has not improved for this many checks in a row, and "
            "keep the best model seen. 0 turns early stopping off."
        ),
        cli="--early-stopping",
        kind="int",
        group="Checks",
        unit="checks",
        minimum=0,
        maximum=100,
        step=1,
    )
    overfit_patience: int = _setting(
        3,
        title="Overfitting alarm after",
        help=(
            "Warn that the model is memorising the examples instead of learning the task when the "
            "validation loss rises for this many checks in a row while the training loss keeps falling."
        ),
        cli="--overfit-patience",
        kind="int",
        group="Checks",
        advanced=True,
        unit="checks",
        minimum=1,
        maximum=100,
        step=1,
    )
    max_steps: int = _setting(
        0,
        title="Step limit",
        help=(
            "Stop after this many learning steps whatever the number of epochs. 0 means no limit: the epochs decide."
        ),
        cli="--max-steps",
        kind="int",
        group="Schedule",
        advanced=True,
        unit="steps",
        minimum=0,
        maximum=1_000_000,
        step=1,
    )
    seed: int = _setting(
        42,
        title="Random seed",
        help="Fixes the shuffling and the adapter's starting values, so the same settings give the same run.",
        cli="--seed",
        kind="int",
        group="Schedule",
        advanced=True,
        minimum=0,
        maximum=2**32 - 1,
        step=1,
    )
    packing: bool = _setting(
        False,
        title="Pack short examples",
        help=(
            "Put several short examples into one sequence so less memory and time goes to padding. Speeds "
            "up training on short examples; leave it off if you are unsure."
        ),
        cli="--packing",
        kind="bool",
        group="Schedule",
        advanced=True,
    )
    save_every_steps: int = _setting(
        0,
        title="Save a checkpoint every",
        help=(
            "How often, in learning steps, training saves a checkpoint it can resume from after a stop or "
            "crash. 0 saves at every check, which early stopping needs to keep the best model."
        ),
        cli="--save-every",
        kind="int",
        group="Checks",
        advanced=True,
        unit="steps",
        minimum=0,
        maximum=1_000_000,
        step=1,
    )
    preference_beta: float = _setting(
        0.1,
        title="Preference strength (beta)",
        help=(
            "DPO: how far the model may move away from where it started; higher keeps it closer (0.1 is "
            "usual). ORPO: how much the preference counts next to learning the chosen answers (0.1 is usual). "
            "Only used when learning from preferences."
        ),
        cli="--beta",
        kind="float",
        group="Preferences",
        advanced=True,
        minimum=0.01,
        maximum=2.0,
        step=0.01,
    )
    start_from_run: int = _setting(
        0,
        title="Start from run",
        help=(
            "0 starts from the base model. The number of a finished LoRA or QLoRA run of this project "
            "continues from its adapter: the usual way to learn from preferences after learning from examples. "
            "The new run's adapter then holds both and works on the same base model."
        ),
        cli="--start-from-run",
        kind="int",
        group="Preferences",
        minimum=0,
        maximum=1_000_000_000,
        step=1,
    )
    merge_after: bool = _setting(
        False,
        title="Merge the adapter when done",
        help=(
            "After LoRA or QLoRA training, also save a copy of the model with the adapter built in, which "
            "other tools can load without PEFT. Takes as much disk as the model itself."
        ),
        cli="--merge",
        kind="bool",
        group="Saving",
        advanced=True,
    )

    # --- derived values -------------------------------------------------------------------------------

    @property
    def effective_batch_size(self) -> int:
        """Examples per learning step on one device: batch size × gradient accumulation."""
        return self.per_device_batch_size * self.gradient_accumulation_steps

    def effective_batch_size_for(self, devices: int = 1) -> int:
        """Examples per learning step when training on `devices` GPUs (data parallel)."""
        return self.effective_batch_size * max(1, int(devices))

    @property
    def checkpoint_steps(self) -> int:
        """Steps between checkpoints: `save_every_steps`, or every check when it is 0."""
        return self.save_every_steps or self.eval_every_steps

    @property
    def learns_preferences(self) -> bool:
        return self.objective in PREFERENCE_OBJECTIVES

    @property
    def uses_lora(self) -> bool:
        return self.method in ("lora", "qlora")

    @property
    def target_modules_value(self) -> list[str] | str:
        """What to hand PEFT's LoraConfig(target_modules=...): 'all-linear' or a list of names."""
        return _normalise_modules(self.target_modules)

    def steps_per_epoch(self, train_rows: int, devices: int = 1) -> int:
        """Learning steps in one pass over `train_rows` rows (at least 1)."""
        batches = math.ceil(max(0, train_rows) / (self.per_device_batch_size * max(1, devices)))
        return max(1, math.ceil(batches / self.gradient_accumulation_steps))

    def total_steps(self, train_rows: int, devices: int = 1) -> int:
        """Learning steps the run will take at most (before early stopping): max_steps, else epochs."""
        if self.max_steps > 0:
            return self.max_steps
        return self.steps_per_epoch(train_rows, devices) * self.num_epochs

    # --- conversion -----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every setting (target_modules as 'all-linear' or a list)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["target_modules"] = _normalise_modules(self.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainConfig:
        """Build from a dict (e.g. run.json, a form, CLI options). Missing keys keep their defaults;
        None values count as missing; strings are converted ("0.0002", "true", "q_proj,v_proj").
        Unknown keys raise TrainError naming the valid ones. Does not call `check()`."""
        data = dict(data or {})
        names = [f.name for f in SETTING_FIELDS]
        unknown = sorted(key for key in data if key not in names)
        if unknown:
            raise TrainError(
                f"Unknown training setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
                f"Valid settings are: {', '.join(names)}."
            )
        values = {key: coerce(key, value) for key, value in data.items() if value is not None}
        return cls(**values)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some settings changed (values converted like `from_dict`)."""
        merged = self.to_dict()
        merged.update(changes)
        return TrainConfig.from_dict(merged)

    def with_preset(self, name: str) -> TrainConfig:
        """A copy with the preset's overrides applied and `preset` set to its name. For method 'full'
        the preset's learning rate is scaled down (full fine-tuning wants a smaller step)."""
        key = (name or "").strip().lower()
        if key not in PRESETS:
            raise TrainError(f"There is no preset called {name!r}. Choose one of: {', '.join(PRESETS)}.")
        changes: dict[str, Any] = dict(PRESETS[key].overrides)
        if self.method == "full" and "learning_rate" in changes:
            changes["learning_rate"] = changes["learning_rate"] * FULL_FINE_TUNE_LR_FACTOR
        if self.learns_preferences and "learning_rate" in changes:
            changes["learning_rate"] = changes["learning_rate"] * PREFERENCE_LR_FACTOR
        changes["preset"] = key
        return self.replace(**changes)

    # --- validation -----------------------------------------------------------------------------------

    def check(self) -> TrainConfig:
        """Raise TrainError with a plain message (what is wrong, what to do) for the first bad setting;
        return self when every setting is usable."""
        problems = self.problems()
        if problems:
            if len(problems) == 1:
                raise TrainError(problems[0])
            raise TrainError("Some training settings are not usable:\n- " + "\n- ".join(problems))
        return self

    def problems(self) -> list[str]:
        """Every unusable setting, one plain sentence each (empty when all is well)."""
        out: list[str] = []
        for spec in SETTING_FIELDS:
            message = _field_problem(spec, getattr(self, spec.name))
            if message:
                out.append(message)
        if out:
            return out
        if self.start_from_run and not self.uses_lora:
            out.append("Starting from an earlier run continues its LoRA adapter, so the method must be LoRA or "
                       "QLoRA; set 'Start from run' to 0 for full fine-tuning.")
        if self.early_stopping_patience > 0 and self.save_every_steps and self.save_every_steps % self.eval_every_steps:
            out.append(
                f"With early stopping on, checkpoints must be saved at checks: 'Save a checkpoint every' "
                f"({self.save_every_steps}) must be a multiple of 'Check every' ({self.eval_every_steps}), "
                f"or 0 to save at every check."
            )
        return out

    def warnings(self) -> list[str]:
        """Usable but unusual choices, one plain sentence each, for the UI to show next to the form."""
        out: list[str] = []
        if self.method == "full" and self.learning_rate > 1e-4:
            out.append(
                f"A learning rate of {self.learning_rate:g} is high for full fine-tuning; "
                "0.00002-0.0001 is usual. Choosing a preset again sets a suitable one."
            )
        if self.uses_lora and self.lora_r & (self.lora_r - 1):
            out.append(f"A LoRA rank of {self.lora_r} works, but powers of two (8, 16, 32) are usual.")
        if self.uses_lora and not (self.lora_r <= self.lora_alpha <= 4 * self.lora_r):
            out.append(
                f"LoRA alpha {self.lora_alpha} is unusual for rank {self.lora_r}; twice the rank "
                f"({2 * self.lora_r}) is the common choice."
            )
        if self.max_steps and self.early_stopping_patience == 0 and self.max_steps > 10_000:
            out.append(f"{self.max_steps} steps is a long run with early stopping off.")
        return out


# --- the ordered metadata list -----------------------------------------------------------------------


def _collect_fields() -> tuple[SettingField, ...]:
    fields_out = []
    for f in dataclasses.fields(TrainConfig):
        fields_out.append(SettingField(name=f.name, default=f.default, setting=f.metadata["setting"]))
    return tuple(fields_out)


SETTING_FIELDS: tuple[SettingField, ...] = _collect_fields()
"""Every setting in display order (the order of the TrainConfig fields)."""

SETTINGS_BY_NAME: dict[str, SettingField] = {spec.name: spec for spec in SETTING_FIELDS}

DEFAULTS = TrainConfig()


def setting(name: str) -> SettingField:
    """Metadata of one setting; TrainError naming the valid ones when `name` is unknown."""
    try:
        return SETTINGS_BY_NAME[name]
    except KeyError:
        raise TrainError(
            f"Unknown training setting: {name}. Valid settings are: {', '.join(SETTINGS_BY_NAME)}."
        ) from None


def coerce(name: str, value: Any) -> Any:
    """Convert a raw value (from a form, the CLI or JSON) to the setting's type, or raise TrainError.
    Bounds are not checked here; `TrainConfig.check()` does that."""
    spec = setting(name)
    kind = spec.kind
    title = spec.title
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind == "choice":
            return str(value).strip().lower()
        return _normalise_modules(value)
    except (TypeError, ValueError):
        expected = {"bool": "yes or no", "int": "a whole number", "float": "a number"}.get(kind, "text")
        raise TrainError(f"{title} ({name}) must be {expected}; got {value!r}.") from None


def _normalise_modules(value: Any) -> list[str] | str:
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == ALL_LINEAR:
            return ALL_LINEAR
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(part).strip() for part in value if str(part).strip()]
    raise TypeError(value)


def _field_problem(spec: SettingField, value: Any) -> str | None:
    name, title = spec.name, spec.title
    if spec.kind == "choice":
        if value not in spec.choices:
            return f"{title} must be one of {', '.join(spec.choices)}; got {value!r}."
        return None
    if spec.kind == "modules":
        modules = _normalise_modules(value) if isinstance(value, (str, list, tuple)) else None
        if not modules:
            return (
                f"{title} ({name}) is empty: LoRA needs at least one layer to adapt. "
                f"Use '{ALL_LINEAR}' or layer names such as q_proj,v_proj."
            )
        return None
    if spec.kind == "bool":
        return None if isinstance(value, bool) else f"{title} ({name}) must be yes or no; got {value!r}."
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{title} ({name}) must be a number; got {value!r}."
    if spec.kind == "int" and not float(value).is_integer():
        return f"{title} ({name}) must be a whole number; got {value!r}."
    if name == "learning_rate" and not 0 < value <= 0.01:
        return (
            f"The learning rate must be above 0 and at most 0.01; got {value:g}. "
            "Try 0.0002 for LoRA or QLoRA, 0.00002 for full fine-tuning."
        )
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        unit = f" {spec.unit}" if spec.unit and spec.unit != "fraction" else ""
        return f"{title} ({name}) must be between {_fmt(low)} and {_fmt(high)}{unit}; got {_fmt(value)}."
    return None


def _fmt(value: float | None) -> str:
    if value is None:
        return "?"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}".replace(",", " ") if abs(value) >= 100_000 else str(int(value))
    return f"{value:g}"


# --- for the CLI and the docs ------------------------------------------------------------------------


def cli_options() -> list[dict[str, Any]]:
    """One dict per setting for building CLI options (no typer here): name (the TrainConfig field),
    flag ("--learning-rate"), type (bool/int/float/str), default (str for target_modules: "all-linear"
    or "a,b"), help (plain words plus the allowed range), choices (tuple, empty if free), advanced."""
    out = []
    for spec in SETTING_FIELDS:
        py_type: type = {"bool": bool, "int": int, "float": float}.get(spec.kind, str)
        default = spec.default
        if spec.kind == "modules":
            default = default if isinstance(default, str) else ",".join(default)
        out.append(
            {
                "name": spec.name,
                "flag": spec.cli,
                "type": py_type,
                "default": default,
                "help": f"{spec.help} ({_allowed(spec)})",
                "choices": spec.choices,
                "advanced": spec.advanced,
            }
        )
    return out


def _allowed(spec: SettingField) -> str:
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if spec.kind == "bool":
        return "yes or no"
    if spec.kind == "modules":
        return f"'{ALL_LINEAR}' or comma-separated layer names"
    unit = f" {spec.unit}" if spec.unit and spec.unit != "fraction" else ""
    return f"{_fmt(spec.minimum)} to {_fmt(spec.maximum)}{unit}"


def _default_text(spec: SettingField) -> str:
    value = spec.default
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


SETTINGS_TABLE_START = "<!-- settings-table:start (generated by studio.train.settings.settings_markdown) -->"
SETTINGS_TABLE_END = "<!-- settings-table:end -->"


def settings_markdown() -> str:
    """The settings table of docs/TRAINING.md (between the two marker comments, markers included)."""
    lines = [
        SETTINGS_TABLE_START,
        "| Setting | CLI flag | Default | Allowed | Advanced | What it does |",
        "|---|---|---|---|---|---|",
    ]
    for spec in SETTING_FIELDS:
        help_text = spec.help.replace("|", "\\|")
        lines.append(
            f"| {spec.title} (`{spec.name}`) | `{spec.cli}` | `{_default_text(spec)}` | {_allowed(spec)} | "
            f"{'yes' if spec.advanced else 'no'} | {help_text} |"
        )
    lines.append(SETTINGS_TABLE_END)
    return "\n".join(lines)


PRESETS_TABLE_START = "<!-- presets-table:start (generated by studio.train.settings.presets_markdown) -->"
PRESETS_TABLE_END = "<!-- presets-table:end -->"


def presets_markdown() -> str:
    """The presets table of docs/TRAINING.md: one row per preset, one column per setting it sets."""
    names: list[str] = []
    for preset in PRESETS.values():
        names += [name for name in preset.overrides if name not in names]
    specs = [SETTINGS_BY_NAME[name] for name in names]
    lines = [
        PRESETS_TABLE_START,
        "| Preset | " + " | ".join(_titled(spec) for spec in specs) + " |",
        "|---|" + "---|" * len(specs),
    ]
    for preset in PRESETS.values():
        cells = []
        for spec in specs:
            value = preset.overrides.get(spec.name, spec.default)
            text = f"{value:g}" if isinstance(value, float) else str(value)
            cells.append("0 (off)" if spec.name == "early_stopping_patience" and value == 0 else text)
        lines.append(f"| {preset.title} | " + " | ".join(cells) + " |")
    lines.append(PRESETS_TABLE_END)
    return "\n".join(lines)


def _titled(spec: SettingField) -> str:
    return f"{spec.title} ({spec.unit})" if spec.unit and spec.unit != "fraction" else spec.title


def replace_settings_table(text: str) -> str:
    """`text` (docs/TRAINING.md) with both generated regions (settings and presets tables) rewritten."""
    for start_marker, end_marker, table in (
        (SETTINGS_TABLE_START, SETTINGS_TABLE_END, settings_markdown()),
        (PRESETS_TABLE_START, PRESETS_TABLE_END, presets_markdown()),
    ):
        start, end = text.find(start_marker), text.find(end_marker)
        if start < 0 or end < start:
            raise ValueError(f"the markers {start_marker!r} and {end_marker!r} are missing")
        text = text[:start] + table + text[end + len(end_marker) :]
    return text


def _main(argv: list[str]) -> int:
    """`python -m studio.train.settings [docs/TRAINING.md]`: print the tables, or rewrite them in the file."""
    if not argv:
        print(presets_markdown() + "\n\n" + settings_markdown())
        return 0
    from pathlib import Path

    path = Path(argv[0])
    path.write_text(replace_settings_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"Updated the generated tables in {path}.")
    return 0


__all__ = [
    "ALL_LINEAR",
    "DEFAULTS",
    "METHODS",
    "SCHEDULERS",
    "SETTINGS_BY_NAME",
    "SETTING_FIELDS",
    "Setting",
    "SettingField",
    "TrainConfig",
    "cli_options",
    "coerce",
    "presets_markdown",
    "replace_settings_table",
    "setting",
    "settings_markdown",
]


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))

"""Training presets: three named bundles of settings a person picks instead of tuning numbers.

Pure data (no imports from the rest of the studio) so the UI, the CLI and `TrainConfig.with_preset`
can all read it. The overrides name `TrainConfig` fields; every field a preset does not name keeps
its current value. Balanced equals the `TrainConfig` defaults (a test checks it).

The learning rates here suit LoRA and QLoRA. Full fine-tuning changes every weight and wants a rate
about ten times smaller, so `with_preset` multiplies it by `FULL_FINE_TUNE_LR_FACTOR` for method 'full'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FULL_FINE_TUNE_LR_FACTOR = 0.1


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str
    overrides: dict[str, Any]


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        title="Quick",
        description=(
            "Quick: a few minutes, good to check everything works. One pass over the examples with a "
            "small adapter; it checks the validation loss every 10 steps and never stops early."
        ),
        overrides={
            "num_epochs": 1,
            "learning_rate": 2e-4,
            "lora_r": 8,
            "lora_alpha": 16,
            "eval_every_steps": 10,
            "early_stopping_patience": 0,
            "overfit_patience": 2,
        },
    ),
    "balanced": Preset(
        name="balanced",
        title="Balanced",
        description=(
            "Balanced: the usual choice. Three passes over the examples, checks the validation loss "
            "every 5 steps and stops early when it has not improved for 3 checks in a row."
        ),
        overrides={
            "num_epochs": 3,
            "learning_rate": 2e-4,
            "lora_r": 16,
            "lora_alpha": 32,
            "eval_every_steps": 5,
            "early_stopping_patience": 3,
            "overfit_patience": 3,
        },
    ),
    "thorough": Preset(
        name="thorough",
        title="Thorough",
        description=(
            "Thorough: takes longest, for the final model. Up to five passes with a bigger adapter and a "
            "gentler learning rate; it stops early only after 5 checks without improvement."
        ),
        overrides={
            "num_epochs": 5,
            "learning_rate": 1e-4,
            "lora_r": 32,
            "lora_alpha": 64,
            "eval_every_steps": 5,
            "early_stopping_patience": 5,
            "overfit_patience": 4,
        },
    ),
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
DEFAULT_PRESET = "balanced"


def preset_choices() -> list[tuple[str, str]]:
    """(label, name) pairs for a dropdown or radio, in the order Quick, Balanced, Thorough."""
    return [(preset.title, name) for name, preset in PRESETS.items()]

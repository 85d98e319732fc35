"""Training settings, presets and the memory/time estimate: one definition, plain refusals, sane numbers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from studio.errors import TrainError
from studio.train import estimate as est
from studio.train.presets import DEFAULT_PRESET, PRESETS
from studio.train.settings import (
    ALL_LINEAR,
    SETTING_FIELDS,
    TrainConfig,
    cli_options,
    presets_markdown,
    replace_settings_table,
    settings_markdown,
)

ROOT = Path(__file__).resolve().parents[1]

CONTRACT_FIELDS = [
    "method", "preset", "objective", "learning_rate", "num_epochs", "per_device_batch_size",
    "gradient_accumulation_steps",
    "max_seq_length", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "weight_decay", "warmup_ratio",
    "lr_scheduler", "eval_every_steps", "early_stopping_patience", "overfit_patience", "max_steps", "seed",
    "packing", "save_every_steps", "preference_beta", "start_from_run", "merge_after",
]  # fmt: skip

SMOLLM2_135M = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_hidden_layers": 30,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
}
SMOLLM2_135M_PARAMS = 134_515_008  # sum of numel over the real model's tensors


# --- the one definition ----------------------------------------------------------------------------------


def test_fields_are_the_contracts_in_display_order() -> None:
    assert [spec.name for spec in SETTING_FIELDS] == CONTRACT_FIELDS
    assert [f.name for f in dataclasses.fields(TrainConfig)] == CONTRACT_FIELDS


@pytest.mark.parametrize("spec", SETTING_FIELDS, ids=lambda s: s.name)
def test_every_setting_has_complete_metadata(spec) -> None:
    assert spec.title and spec.title[0].isupper()
    assert len(spec.help) >= 40 and spec.help.endswith("."), "help must be a plain sentence or more"
    assert spec.cli.startswith("--") and spec.cli == spec.cli.lower() and " " not in spec.cli
    assert spec.group
    assert isinstance(spec.advanced, bool)
    if spec.kind in ("int", "float"):
        assert spec.minimum is not None and spec.maximum is not None and spec.minimum < spec.maximum
        assert spec.minimum <= spec.default <= spec.maximum
        assert isinstance(spec.default, int if spec.kind == "int" else float)
    elif spec.kind == "choice":
        assert len(spec.choices) >= 2 and spec.default in spec.choices
    elif spec.kind == "bool":
        assert isinstance(spec.default, bool)
    else:
        assert spec.kind == "modules" and spec.default == ALL_LINEAR


def test_cli_flags_are_unique_and_cli_options_cover_every_setting() -> None:
    flags = [spec.cli for spec in SETTING_FIELDS]
    assert len(set(flags)) == len(flags)
    options = cli_options()
    assert [o["name"] for o in options] == CONTRACT_FIELDS
    by_name = {o["name"]: o for o in options}
    assert by_name["learning_rate"]["type"] is float and by_name["learning_rate"]["default"] == 2e-4
    assert by_name["num_epochs"]["type"] is int and "1 to 50" in by_name["num_epochs"]["help"]
    assert by_name["packing"]["type"] is bool and by_name["packing"]["default"] is False
    assert by_name["method"]["choices"] == ("qlora", "lora", "full")
    assert by_name["target_modules"]["type"] is str and by_name["target_modules"]["default"] == ALL_LINEAR
    for option in options:
        assert set(option) == {"name", "flag", "type", "default", "help", "choices", "advanced"}
    # Data only: a CLI value given as text must come back as the setting's type.
    config = TrainConfig.from_dict({"learning_rate": "0.0001", "num_epochs": "2", "packing": "yes"})
    assert (config.learning_rate, config.num_epochs, config.packing) == (1e-4, 2, True)


def test_defaults_are_usable_and_equal_the_balanced_preset() -> None:
    config = TrainConfig()
    assert config.check() is config
    assert config.preset == DEFAULT_PRESET == "balanced"
    assert config.with_preset("balanced") == config
    assert config.effective_batch_size == 8
    assert config.warnings() == []


def test_effective_batch_size_and_steps() -> None:
    config = TrainConfig(per_device_batch_size=4, gradient_accumulation_steps=3)
    assert config.effective_batch_size == 12
    assert config.effective_batch_size_for(2) == 24
    assert config.steps_per_epoch(100) == 9  # 25 batches of 4, 3 batches a step
    assert config.steps_per_epoch(100, devices=2) == 5
    assert config.total_steps(100) == 9 * config.num_epochs
    assert dataclasses.replace(config, max_steps=7).total_steps(100) == 7
    assert config.steps_per_epoch(0) == 1


def test_round_trip_through_json() -> None:
    config = TrainConfig(
        method="qlora", learning_rate=5e-5, num_epochs=4, lora_r=8, lora_alpha=16,
        target_modules=["q_proj", "v_proj"], packing=True, merge_after=True, lr_scheduler="linear",
    )  # fmt: skip
    data = json.loads(json.dumps(config.to_dict()))
    assert data["target_modules"] == ["q_proj", "v_proj"]
    assert TrainConfig.from_dict(data) == config
    assert TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
    assert TrainConfig.from_dict({}) == TrainConfig()
    assert TrainConfig.from_dict({"lora_r": None}) == TrainConfig()  # None means "not given"


def test_target_modules_accepts_comma_text() -> None:
    config = TrainConfig.from_dict({"target_modules": " q_proj, v_proj ,"})
    assert config.target_modules == ["q_proj", "v_proj"] and config.target_modules_value == ["q_proj", "v_proj"]
    assert TrainConfig.from_dict({"target_modules": "ALL-LINEAR"}).target_modules == ALL_LINEAR


def test_unknown_keys_are_refused_naming_the_valid_ones() -> None:
    with pytest.raises(TrainError) as info:
        TrainConfig.from_dict({"lr": 1e-4, "epochs": 3})
    message = str(info.value)
    assert "lr" in message and "epochs" in message
    assert "learning_rate" in message and "num_epochs" in message and "merge_after" in message


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"learning_rate": 0.0}, "learning rate must be above 0 and at most 0.01"),
        ({"learning_rate": 0.05}, "learning rate must be above 0 and at most 0.01"),
        ({"lora_r": 0}, "LoRA rank (lora_r) must be between 1 and 256"),
        ({"lora_r": 512}, "LoRA rank (lora_r) must be between 1 and 256"),
        ({"max_seq_length": 8}, "Maximum length (max_seq_length) must be between 16 and 32768 tokens"),
        ({"max_seq_length": 40_000}, "must be between 16 and 32768"),
        ({"method": "adapter"}, "Method must be one of qlora, lora, full; got 'adapter'"),
        ({"lr_scheduler": "step"}, "must be one of cosine, linear, constant"),
        ({"target_modules": []}, "LoRA needs at least one layer to adapt"),
        ({"target_modules": " , "}, "LoRA needs at least one layer to adapt"),
        ({"num_epochs": 0}, "Epochs (num_epochs) must be between 1 and 50"),
        ({"per_device_batch_size": 0}, "Batch size (per_device_batch_size) must be between 1 and 256"),
        ({"lora_dropout": 0.9}, "LoRA dropout (lora_dropout) must be between 0 and 0.5"),
        ({"preset": "turbo"}, "Preset must be one of quick, balanced, thorough"),
        ({"save_every_steps": 7, "eval_every_steps": 5}, "must be a multiple of 'Check every' (5)"),
    ],
)
def test_bad_values_are_refused_with_plain_messages(changes: dict, phrase: str) -> None:
    config = TrainConfig.from_dict(changes)
    with pytest.raises(TrainError) as info:
        config.check()
    assert phrase in str(info.value)
    assert config.problems()


def test_several_problems_are_listed_together() -> None:
    with pytest.raises(TrainError) as info:
        TrainConfig(learning_rate=0.0, lora_r=0).check()
    assert "learning rate" in str(info.value) and "lora_r" in str(info.value)


def test_save_cadence_is_free_without_early_stopping() -> None:
    TrainConfig(save_every_steps=7, eval_every_steps=5, early_stopping_patience=0).check()
    assert TrainConfig(save_every_steps=0, eval_every_steps=5).checkpoint_steps == 5
    assert TrainConfig(save_every_steps=20).checkpoint_steps == 20


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({"num_epochs": "three"}, "Epochs (num_epochs) must be a whole number; got 'three'"),
        ({"num_epochs": 2.5}, "must be a whole number"),
        ({"learning_rate": "fast"}, "Learning rate (learning_rate) must be a number"),
        ({"packing": "maybe"}, "must be yes or no"),
        ({"lora_r": True}, "must be a whole number"),
    ],
)
def test_values_of_the_wrong_type_are_refused(data: dict, phrase: str) -> None:
    with pytest.raises(TrainError) as info:
        TrainConfig.from_dict(data)
    assert phrase in str(info.value)


def test_unusual_choices_only_warn() -> None:
    config = TrainConfig(lora_r=12, lora_alpha=200, method="lora")
    config.check()
    text = " ".join(config.warnings())
    assert "powers of two" in text and "twice the rank (24)" in text
    assert "high for full fine-tuning" in " ".join(TrainConfig(method="full", learning_rate=2e-4).warnings())


# --- presets -----------------------------------------------------------------------------------------------


def test_presets_set_what_they_say() -> None:
    assert list(PRESETS) == ["quick", "balanced", "thorough"]
    base = TrainConfig(per_device_batch_size=2, seed=7)
    for name, preset in PRESETS.items():
        config = base.with_preset(name)
        config.check()
        assert config.preset == name
        for key, value in preset.overrides.items():
            assert getattr(config, key) == value, (name, key)
        assert (config.per_device_batch_size, config.seed) == (2, 7), "settings a preset does not name are kept"
        assert preset.description.startswith(preset.title + ":")
    quick, balanced, thorough = (base.with_preset(n) for n in PRESETS)
    assert quick.num_epochs < balanced.num_epochs < thorough.num_epochs
    assert quick.lora_r < balanced.lora_r < thorough.lora_r
    assert quick.early_stopping_patience == 0 and "never stops early" in PRESETS["quick"].description
    assert "a few minutes" in PRESETS["quick"].description
    assert thorough.learning_rate < balanced.learning_rate


def test_presets_use_a_smaller_learning_rate_for_full_fine_tuning() -> None:
    full = TrainConfig(method="full").with_preset("balanced")
    assert full.learning_rate == pytest.approx(PRESETS["balanced"].overrides["learning_rate"] / 10)
    assert full.warnings() == []


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(TrainError, match=r"no preset called 'turbo'\. Choose one of: quick, balanced, thorough"):
        TrainConfig().with_preset("turbo")
    assert TrainConfig().with_preset(" Quick ").preset == "quick"


# --- model size ----------------------------------------------------------------------------------------------


def test_smollm2_size_from_its_config(tmp_path: Path) -> None:
    size = est.model_size_from_config(SMOLLM2_135M)
    assert size.params == SMOLLM2_135M_PARAMS
    assert round(size.params / 1e6, 1) == 134.5
    # LoRA r=16 on every linear layer of SmolLM2-135M: 4,884,480 trainable parameters.
    assert size.lora_params(16, ALL_LINEAR) == 4_884_480
    assert size.lora_params(16, ["q_proj", "v_proj"]) == 30 * 16 * ((576 + 576) + (576 + 192))


def test_model_size_reads_config_json_of_a_folder_and_of_an_adapters_base(tmp_path: Path) -> None:
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(SMOLLM2_135M), encoding="utf-8")
    size = est.model_size(str(model), tmp_path / "models")
    assert size.params == SMOLLM2_135M_PARAMS and size.source.endswith("config.json")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(model)}))
    assert est.model_size(str(adapter), tmp_path / "models").params == SMOLLM2_135M_PARAMS


def test_model_size_of_the_embedded_model_before_conversion(tmp_path: Path) -> None:
    size = est.model_size("embedded:smollm2-135m-instruct", tmp_path / "empty-models")
    assert size.params == SMOLLM2_135M_PARAMS
    assert size.source == "known shape of embedded:smollm2-135m-instruct"


def test_model_size_of_known_and_unknown_hub_models(tmp_path: Path) -> None:
    assert round(est.model_size("HuggingFaceTB/SmolLM2-360M-Instruct", tmp_path).params / 1e6) == 362
    assert round(est.model_size("HuggingFaceTB/SmolLM2-1.7B-Instruct", tmp_path).params / 1e9, 2) == 1.71
    with pytest.raises(TrainError, match="not known yet"):
        est.model_size("someone/some-model", tmp_path)


def test_param_counts_match_real_models() -> None:
    """The formula against transformers' own count, on the meta device (no weights are allocated)."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    configs = [
        (LlamaConfig(**{k: v for k, v in SMOLLM2_135M.items() if k != "architectures"}), 0.0),
        (LlamaConfig(hidden_size=256, intermediate_size=688, num_hidden_layers=3, num_attention_heads=8,
                     num_key_value_heads=2, vocab_size=1000, tie_word_embeddings=False), 0.0),
        (GPT2Config(n_embd=256, n_layer=3, n_head=4, vocab_size=1000, n_positions=128), 0.03),  # biases, positions
    ]  # fmt: skip
    for config, tolerance in configs:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        real = sum(p.numel() for p in model.parameters())
        assert est.model_size_from_config(config.to_dict()).params == pytest.approx(real, rel=tolerance), config


def test_size_guessed_from_a_bare_parameter_count() -> None:
    size = est.model_size_from_params(1_000_000_000)
    assert size.params == 1_000_000_000 and size.hidden_size % 64 == 0 and "guessed" in size.source
    with pytest.raises(TrainError):
        est.model_size_from_params(0)


# --- the estimate --------------------------------------------------------------------------------------------


SMOL = est.model_size_from_config(SMOLLM2_135M, source="test")


def _estimate(config: TrainConfig | None = None, **kwargs) -> est.Estimate:
    kwargs.setdefault("rows", 300)
    kwargs.setdefault("mean_tokens", 200)
    kwargs.setdefault("validation_rows", 40)
    return est.estimate(config or TrainConfig(), model=SMOL, **kwargs)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_qlora_needs_less_memory_than_lora_than_full(device: str) -> None:
    qlora, lora, full = (_estimate(TrainConfig(method=m), device=device) for m in ("qlora", "lora", "full"))
    assert qlora.memory_bytes < lora.memory_bytes < full.memory_bytes
    assert qlora.breakdown["weights"] < lora.breakdown["weights"]
    assert full.breakdown["training_state"] == SMOLLM2_135M_PARAMS * 12  # gradient + two Adam moments
    assert lora.trainable_params == 4_884_480 and full.trainable_params == SMOLLM2_135M_PARAMS
    assert lora.memory_bytes == sum(lora.breakdown.values())


def test_weights_are_16_bit_on_a_gpu_and_32_bit_on_a_cpu() -> None:
    assert _estimate(device="cpu").breakdown["weights"] == SMOLLM2_135M_PARAMS * 4
    assert _estimate(device="cuda").breakdown["weights"] == SMOLLM2_135M_PARAMS * 2


def test_doubling_the_batch_raises_activation_memory() -> None:
    small, big = _estimate(TrainConfig(per_device_batch_size=2)), _estimate(TrainConfig(per_device_batch_size=4))
    assert big.breakdown["activations"] == pytest.approx(2 * small.breakdown["activations"], rel=0.01)
    assert big.breakdown["logits"] > small.breakdown["logits"]
    assert big.memory_bytes > small.memory_bytes
    assert big.breakdown["weights"] == small.breakdown["weights"]


def test_longer_sequences_cost_memory_up_to_the_maximum_length() -> None:
    short, long = _estimate(mean_tokens=100), _estimate(mean_tokens=400)
    assert long.breakdown["activations"] > short.breakdown["activations"]
    capped = TrainConfig(max_seq_length=128)
    assert _estimate(capped, mean_tokens=4000).breakdown == _estimate(capped, mean_tokens=2000).breakdown


def test_gradient_checkpointing_trades_memory_for_time() -> None:
    on = _estimate(device="cuda", gradient_checkpointing=True)
    off = _estimate(device="cuda", gradient_checkpointing=False)
    assert on.breakdown["activations"] < off.breakdown["activations"]
    assert on.time_breakdown["training"] > off.time_breakdown["training"]
    assert _estimate(device="cuda").gradient_checkpointing and not _estimate(device="cpu").gradient_checkpointing


@pytest.mark.parametrize(
    ("batch", "checkpointing", "measured_gb"),
    [(1, False, 2.35), (4, False, 5.9), (8, False, 10.5), (1, True, 1.75), (8, True, 5.8)],
)
def test_memory_matches_the_cpu_calibration(batch: int, checkpointing: bool, measured_gb: float) -> None:
    """Peak RSS measured for LoRA r=16 on SmolLM2-135M, float32, TRL's fused LM head, batch × 256 tokens."""
    config = TrainConfig(per_device_batch_size=batch, max_seq_length=256)
    result = est.estimate(config, model=SMOL, rows=300, mean_tokens=256, gradient_checkpointing=checkpointing)
    assert measured_gb * 0.95 < result.memory_bytes / est.GB < measured_gb * 1.2


@pytest.mark.parametrize(("pairs", "tokens", "measured_gb"), [(4, 268, 8.1), (8, 268, 14.8), (4, 512, 13.9)])
def test_memory_of_a_preference_run_matches_the_cpu_calibration(pairs: int, tokens: int, measured_gb: float) -> None:
    """Peak RSS measured with bench/preference_memory.py: DPO through the studio's trainer (reference log-probs
    precomputed), LoRA r=16 on SmolLM2-135M, float32; pairs of a prompt with two answers, sequences `tokens` long."""
    config = TrainConfig(objective="dpo", per_device_batch_size=pairs, max_seq_length=512)
    result = est.estimate(config, model=SMOL, rows=48, mean_tokens=tokens, max_tokens=tokens)
    assert measured_gb * 0.95 < result.memory_bytes / est.GB < measured_gb * 1.2


def test_it_does_not_fit_in_a_tiny_memory_and_says_what_to_change() -> None:
    config = TrainConfig(method="full", per_device_batch_size=4, max_seq_length=1024)
    result = _estimate(config, mean_tokens=400, free_memory_bytes=1 * est.GB)
    assert not result.fits
    text = "\n".join(result.advice)
    assert result.advice and "Use QLoRA" in text and "Use LoRA instead of full fine-tuning" in text
    assert "Halve the batch size to 2 and raise gradient accumulation to 4" in text
    assert "Cut the maximum length to 512 tokens" in text
    assert "will probably not fit" in result.summary() and "1.0 GB is free" in result.summary()


def test_advice_names_the_change_that_fits() -> None:
    lora = _estimate(TrainConfig(method="lora"), device="cuda", free_memory_bytes=10**12)
    qlora = _estimate(TrainConfig(method="qlora"), device="cuda", free_memory_bytes=10**12)
    between = (lora.memory_bytes + qlora.memory_bytes) // 2 / est.FIT_MARGIN
    result = _estimate(TrainConfig(method="lora"), device="cuda", free_memory_bytes=int(between))
    assert not result.fits
    assert any(a.startswith("Use QLoRA") and "that fits" in a for a in result.advice)


def test_it_fits_with_plenty_of_memory_and_the_summary_reads_plainly() -> None:
    result = _estimate(TrainConfig().with_preset("quick"), rows=60, mean_tokens=150, free_memory_bytes=64 * est.GB)
    assert result.fits and result.advice == []
    summary = result.summary()
    assert summary.startswith("About ") and " GB of RAM and " in summary and summary.endswith(" on this CPU.")
    gpu = _estimate(device="cuda", devices=2, free_memory_bytes=80 * est.GB).summary()
    assert "of GPU memory per GPU" in gpu and gpu.endswith("on 2 GPUs.")
    data = result.to_dict()
    assert json.loads(json.dumps(data))["memory_bytes"] == result.memory_bytes
    assert set(data["breakdown"]) == {"weights", "training_state", "activations", "logits", "overhead"}


def test_processes_on_one_cpu_split_the_steps_share_the_cores_and_add_up_in_ram() -> None:
    from studio.train import devices

    target = devices.estimate_target(devices.parse("cpu*2"))
    assert (target.device, target.devices) == ("cpu", 2)
    one, two = _estimate(), _estimate(**target.estimate_kwargs() | {"detect_free_memory": False})
    # Each process learns from its share of every batch: half the steps (the run row counts the same way)...
    assert two.total_steps == TrainConfig().total_steps(300, 2) == 19 * 3 < one.total_steps == 38 * 3
    # ... the same rows and tokens on the same cores: no faster...
    assert two.time_breakdown["training"] == pytest.approx(one.time_breakdown["training"], rel=0.03)
    # ... and each process holds its own model in the one RAM.
    assert two.memory_bytes == 2 * one.memory_bytes
    assert two.summary().endswith("on this CPU (2 processes).")
    tight = _estimate(device="cpu", devices=2, free_memory_bytes=int(1.5 * one.memory_bytes / est.FIT_MARGIN))
    assert not tight.fits
    assert any(a.startswith("Train in one process") and "that fits" in a for a in tight.advice)


def test_a_preference_pair_trains_two_sequences() -> None:
    sft, dpo, orpo = (_estimate(TrainConfig(objective=o), rows=100) for o in ("sft", "dpo", "orpo"))
    assert dpo.total_steps == orpo.total_steps == sft.total_steps  # steps follow the pairs, as the run row's do
    assert dpo.total_tokens == orpo.total_tokens == 2 * sft.total_tokens  # the chosen and the rejected answer
    for part in ("activations", "logits"):  # both in one batch, at the measured share of an SFT token's memory
        assert dpo.breakdown[part] == pytest.approx(2 * est.PREFERENCE_TOKEN_MEMORY * sft.breakdown[part], rel=1e-6)
    assert dpo.breakdown["weights"] == sft.breakdown["weights"]
    # DPO's reference log-probabilities: one forward (2 FLOPs a weight a token) over the train and held-out pairs.
    speed = est.device_flops("cpu")
    assert dpo.time_breakdown["reference"] == pytest.approx(
        2 * SMOLLM2_135M_PARAMS * (100 + 40) * 2 * 200 / speed, rel=0.01)
    assert "reference" not in orpo.time_breakdown and "reference" not in sft.time_breakdown


def test_unknown_free_memory_counts_as_fitting_and_detection_reads_meminfo() -> None:
    assert _estimate(free_memory_bytes=None).fits
    free = est.free_memory("cpu")
    assert free is None or free > 0
    detected = _estimate(detect_free_memory=True)
    assert detected.free_memory_bytes == free or abs(detected.free_memory_bytes - free) < 2 * est.GB


def test_time_follows_the_flops_rule() -> None:
    lora, full = _estimate(TrainConfig(method="lora")), _estimate(TrainConfig(method="full"))
    assert full.time_breakdown["training"] == pytest.approx(lora.time_breakdown["training"] * 6 / 4, rel=1e-3)
    assert lora.total_tokens == 300 * 3 * 200 and lora.total_steps == 38 * 3
    speed = est.device_flops("cpu")
    assert lora.time_breakdown["training"] == pytest.approx(4 * SMOLLM2_135M_PARAMS * lora.total_tokens / speed, 0.01)
    more_rows = _estimate(rows=600)
    assert more_rows.time_seconds > lora.time_seconds
    two = _estimate(device="cuda", devices=2)
    one = _estimate(device="cuda", devices=1)
    assert two.time_breakdown["training"] < one.time_breakdown["training"]
    assert est.device_flops("cuda", "NVIDIA H100 80GB HBM3") > est.device_flops("cuda", "Tesla T4")
    assert est.device_flops("cuda", "NVIDIA A100-SXM4-40GB") == dict(est.GPU_FLOPS_BY_NAME)["a100"]
    assert _estimate(flops_per_second=1e15).time_breakdown["training"] < 10


def test_estimate_from_a_model_ref_or_a_parameter_count(tmp_path: Path) -> None:
    by_ref = est.estimate(TrainConfig(), model_ref="embedded:smollm2-135m-instruct", models_dir=tmp_path,
                          rows=100, mean_tokens=150)  # fmt: skip
    assert by_ref.params == SMOLLM2_135M_PARAMS
    by_count = est.estimate(TrainConfig(), params_count=7_000_000_000, rows=100, mean_tokens=150, device="cuda")
    assert by_count.memory_bytes > 13 * est.GB  # 7B in 16 bits alone is 13 GB
    with pytest.raises(TrainError, match="needs the model"):
        est.estimate(TrainConfig(), rows=100, mean_tokens=150)
    with pytest.raises(TrainError, match="'cpu' or 'cuda'"):
        est.estimate(TrainConfig(), model=SMOL, rows=100, mean_tokens=150, device="tpu")  # type: ignore[arg-type]


def test_format_helpers() -> None:
    assert est.format_bytes(1.2 * est.GB) == "1.2 GB"
    assert est.format_bytes(5 * 1024**2) == "5 MB"
    assert est.format_duration(30) == "under a minute"
    assert est.format_duration(180) == "3 minutes"
    assert est.format_duration(60) == "1 minute"
    assert est.format_duration(2.5 * 3600) == "2.5 hours"
    assert est.format_duration(3 * 86400) == "3.0 days"


# --- docs and import weight ----------------------------------------------------------------------------------


def test_training_docs_hold_the_generated_tables() -> None:
    doc = (ROOT / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    assert settings_markdown() in doc and presets_markdown() in doc
    assert replace_settings_table(doc) == doc, "run: python -m studio.train.settings docs/TRAINING.md"
    for spec in SETTING_FIELDS:
        assert f"`{spec.cli}`" in doc and f"(`{spec.name}`)" in doc
    for preset in PRESETS.values():
        assert f"**{preset.title}:" in doc
    for needed in ("python -m studio.train.launch RUN_ID", "torchrun --standalone", "--devices 0,1",
                   "-m studio.train.worker RUN_ID", "zero2.yaml", "zero3.yaml", "pip install deepspeed",
                   "interrupted", "Early stopping", "Overfitting alarm"):  # fmt: skip
        assert needed in doc


def test_importing_settings_presets_estimate_stays_light() -> None:
    code = (
        "import sys, json\n"
        "import studio.train, studio.train.settings, studio.train.presets, studio.train.estimate as e\n"
        "from pathlib import Path\n"
        "from studio.train.settings import TrainConfig\n"
        "r = e.estimate(TrainConfig(), model_ref='embedded:smollm2-135m-instruct', models_dir=Path(sys.argv[1]),"
        " rows=50, mean_tokens=100, detect_free_memory=True)\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets', 'bitsandbytes', 'gradio')"
        " if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'summary': r.summary()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "no-such-models-dir")], capture_output=True,
                         text=True, check=True, cwd=ROOT, timeout=60)  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["summary"].startswith("About ")

"""Train tab: pick a dataset version, a base model and a preset, see the estimate, train, and watch the
train and validation loss move. Runs live in their own OS process (studio.train.runs); this tab only
reads the run rows and their metrics, so closing the tab, reloading or restarting loses nothing.

Every setting's widget, label and help text come from studio.train.settings.SETTING_FIELDS, the one
definition the CLI and docs/TRAINING.md also read.
"""

from __future__ import annotations

import html
from typing import Any

import gradio as gr
import pandas as pd

from studio import charts
from studio.errors import StudioError
from studio.ui import texts
from studio.ui.tab import TabHandle, fail, require_project
from studio.workspace import Workspace
from studio.workspace.projects import get_project

RUN_COLUMNS = ["run", "name", "status", "progress", "base model", "method", "dataset", "created"]
POLL_SECONDS = 2.0
BASICS = ("method", "preset")


def _esc(text: Any) -> str:
    return html.escape(str(text or ""))


def _fields() -> list[Any]:
    from studio.train.settings import SETTING_FIELDS

    return [f for f in SETTING_FIELDS if f.name not in BASICS]


def _component(f: Any) -> gr.components.Component:
    """The widget of one setting, built from its metadata."""
    label = f.title + (f" ({f.unit})" if f.unit else "")
    common = {"label": label, "info": f.help, "elem_id": f"train-{f.name.replace('_', '-')}"}
    if f.kind == "bool":
        return gr.Checkbox(f.default, **common)
    if f.kind == "choice":
        return gr.Dropdown(list(f.choices), value=f.default, **common)
    if f.kind == "modules":
        value = f.default if isinstance(f.default, str) else ", ".join(f.default)
        return gr.Textbox(value, **common)
    return gr.Number(f.default, precision=0 if f.kind == "int" else None, minimum=f.minimum, maximum=f.maximum,
                     **common)


def version_choices(ws: Workspace, pid: int | None) -> list[tuple[str, int]]:
    from studio.data.versions import list_versions

    if pid is None:
        return []
    out = []
    for v in list_versions(ws, pid):
        sizes = v.to_dict().get("sizes") or {}
        pairs = (v.stats.get("preferences") or {}).get("sizes")
        extra = f" · {pairs.get('train', 0)} + {pairs.get('validation', 0)} preference pairs" if pairs else ""
        out.append((f"{v.name} · {sizes.get('train', 0)} train / {sizes.get('validation', 0)} validation rows{extra}",
                    v.id))
    return out


def model_choices(ws: Workspace, *current: str) -> list[str]:
    from studio.models.registry import list_models

    refs = [m.ref for m in list_models(ws.models_dir) if m.role == "chat"]
    return refs + [c for c in current if c and c not in refs]


def start_from_choices(ws: Workspace, pid: int | None, base_ref: str | None) -> list[tuple[str, int]]:
    """'Start from' of a preference run: the base model, or a finished adapter run of this project and base."""
    from studio.train.preference import continuable_runs

    choices = [(texts.TRAIN_START_FROM_BASE, 0)]
    if pid is None or not base_ref:
        return choices
    for r in continuable_runs(ws, pid, base_ref):
        learned = texts.TRAIN_OBJECTIVES.get(str(r.config.get("objective") or "sft"), "")
        learned = learned[:1].lower() + learned[1:]  # "preference pairs (DPO)"
        parts = [f"Run {r.id}" + (f" “{r.name}”" if r.name else ""), {"qlora": "QLoRA"}.get(r.method, "LoRA"),
                 f"learned from {learned}", f"finished {(r.finished_at or r.updated_at).replace('T', ' ')[:16]}"]
        choices.append((" · ".join(parts), r.id))
    return choices


def start_from_update(ws: Workspace, pid: int | None, base_ref: str | None, objective_value: str | None,
                      current: Any, *, pick_latest: bool = False) -> Any:
    """The dropdown's choices for this project and base, shown only for preference runs. The current pick stays
    if it is still offered; `pick_latest` (the person just switched to preferences) picks the newest run, as
    going on from a finished run is the usual way."""
    choices = start_from_choices(ws, pid, base_ref)
    ids = [value for _label, value in choices]
    learns_preferences = objective_value in ("dpo", "orpo")
    value = current if current in ids and learns_preferences else 0
    if pick_latest and learns_preferences and not value and len(ids) > 1:
        value = ids[1]
    return gr.update(choices=choices, value=value, visible=learns_preferences)


def runs_frame(ws: Workspace, pid: int | None) -> pd.DataFrame:
    from studio.train.runs import list_runs

    rows = []
    if pid is not None:
        for r in list_runs(ws, pid):
            rows.append([r.id, r.title, r.status, r.progress_text(), r.base_model_ref, r.method,
                         r.dataset_version_id, r.created_at.replace("T", " ")[:16]])
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def device_choices() -> tuple[list[tuple[str, str]], list[str], str]:
    """(choices, ticked, help) of the device picker: every GPU nvidia-smi shows (name, memory, free), else the
    CPU. Read again each time the tab opens, so the free memory is current."""
    from studio.train import devices

    gpus = devices.visible_gpus()
    if gpus:
        return [(g.label(), g.key) for g in gpus], [gpus[0].key], texts.TRAIN_DEVICES_HELP
    return [(devices.cpu_label(), "cpu")], ["cpu"], texts.TRAIN_DEVICES_CPU_HELP


def _parallel_note(target: Any) -> str:
    """' × **2** GPUs' (or processes on the CPU) in the effective-batch line; nothing for one device."""
    if target.devices < 2:
        return ""
    return f" × **{target.devices}** {'GPUs' if target.device == 'cuda' else 'processes'}"


def curves_html(run: Any) -> str:
    series = {split: list(points) for split, points in ((run.curves or {}) if run is not None else {}).items()
              if points}
    return charts.line_chart(series, title=texts.TRAIN_CURVES, x_label="step", y_label="loss",
                             empty_message=texts.TRAIN_NO_CURVES)


def rewards_html(run: Any) -> str:
    """Preference runs: how often the chosen answer gets the higher reward, on training and held-out pairs."""
    rewards = (run.rewards or {}) if run is not None else {}
    series = {label: list(rewards[key]) for key, label in (("reward_accuracy:train", "train pairs"),
                                                           ("reward_accuracy:validation", "held-out pairs"))
              if rewards.get(key)}
    if not series:
        return ""
    margin = rewards.get("reward_margin:validation") or rewards.get("reward_margin:train") or []
    note = (f"<p class='train-reward-note'>{_esc(texts.TRAIN_REWARDS_NOTE)} Latest reward margin: "
            f"<b>{margin[-1][1]:.3f}</b>.</p>" if margin else "")
    return (f"<div id='train-rewards-chart' data-points='{sum(len(v) for v in series.values())}'>"
            + charts.line_chart(series, title=texts.TRAIN_REWARDS, x_label="step", y_label="share ranked right")
            + note + "</div>")


def progress_html(run: Any) -> str:
    if run is None:
        return f"<div class='train-progress' data-status='none'><p>{_esc(texts.TRAIN_NO_RUN)}</p></div>"
    pct = round(100 * run.fraction)
    stats = []
    if run.train_loss is not None:
        stats.append(f"train loss <b>{run.train_loss:.3f}</b>")
    if run.validation_loss is not None:
        stats.append(f"validation loss <b>{run.validation_loss:.3f}</b>")
    if run.best_validation_loss is not None:
        stats.append(f"best {run.best_validation_loss:.3f}")
    return (f"<div class='gen-progress train-progress' data-status='{run.status}' data-step='{run.step}' "
            f"data-max-steps='{run.max_steps}'>"
            f"<div class='gen-progress-head'><b>{_esc(run.title)}</b> · {_esc(run.method)} on "
            f"{_esc(run.base_model_ref)} · {_esc(_where(run.device))} · "
            f"<span class='gen-state gen-state-{_esc(run.status)}'>{_esc(run.status)}</span></div>"
            f"<div class='gen-bar'><div class='gen-bar-fill' style='width:{pct}%'></div></div>"
            f"<div class='gen-progress-text'>{_esc(run.progress_text())}</div>"
            f"<div class='gen-progress-text'>{' · '.join(stats)}</div>"
            f"<div class='gen-progress-message'>{_esc(run.message)}</div></div>")


def _where(device: str) -> str:
    from studio.train import devices

    return devices.describe(devices.entries_of(device))


def metrics_md(ws: Workspace, run: Any) -> str:
    """tokens/s and memory from the newest metric points."""
    if run is None:
        return ""
    from studio.train.estimate import format_bytes
    from studio.train.runs import metrics

    latest: dict[str, float] = {}
    for _step, _split, name, value in metrics(ws, run.id):
        latest[name] = value
    parts = []
    if run.tokens_per_second:
        parts.append(f"**{run.tokens_per_second:,.0f}** tokens/s")
    if "memory_bytes" in latest:
        parts.append(f"peak memory **{format_bytes(latest['memory_bytes'])}**")
    if "learning_rate" in latest:
        parts.append(f"learning rate {latest['learning_rate']:.2e}")
    if run.best_checkpoint:
        parts.append(f"best checkpoint: `{run.best_checkpoint.rsplit('/', 1)[-1]}`")
    if run.status == "done" and run.output_dir:
        parts.append(f"adapter: `{run.output_dir}/adapter`")
    return " · ".join(parts)


def alarm_md(run: Any) -> str:
    if run is None or not run.overfitting:
        return ""
    return (f"⚠️ **{texts.TRAIN_OVERFIT_TITLE}** {texts.TRAIN_OVERFIT}" if run.active else
            f"⚠️ {texts.TRAIN_OVERFIT_AFTER}")


def build(ws: Workspace, current: gr.State) -> TabHandle:
    from studio.train.presets import PRESETS
    from studio.train.settings import METHODS

    selected = gr.State(None)
    fields = _fields()

    from studio.train.runs import SPACE_NO_GPU, space_without_gpu

    gr.Markdown(texts.TRAIN_INTRO)
    no_gpu = space_without_gpu(ws)
    gr.Markdown(f"⚠️ {SPACE_NO_GPU}", visible=no_gpu, elem_id="train-space-no-gpu")
    with gr.Row():
        with gr.Column(scale=3):
            with gr.Row():
                version = gr.Dropdown([], label=texts.TRAIN_VERSION, info=texts.TRAIN_VERSION_HELP, scale=2,
                                      elem_id="train-version")
                base = gr.Dropdown([], label=texts.TRAIN_BASE, info=texts.TRAIN_BASE_HELP, allow_custom_value=True,
                                   scale=2, elem_id="train-base")
            method = gr.Radio([(texts.TRAIN_METHODS[m], m) for m in METHODS], value="lora", label=texts.TRAIN_METHOD,
                              info=texts.TRAIN_METHOD_HELP, elem_id="train-method")
            preset = gr.Radio([(p.title, name) for name, p in PRESETS.items()], value="balanced",
                              label=texts.TRAIN_PRESET, elem_id="train-preset")
            preset_help = gr.Markdown(PRESETS["balanced"].description, elem_id="train-preset-help")
            # "Learn from" is a basic choice (examples or preference pairs): outside the advanced settings.
            objective_field = next(f for f in fields if f.name == "objective")
            objective = gr.Radio([(texts.TRAIN_OBJECTIVES[o], o) for o in objective_field.choices],
                                 value=objective_field.default, label=objective_field.title,
                                 info=texts.TRAIN_OBJECTIVE_HELP, elem_id="train-objective")
            # Which run to go on from is part of that choice, so it sits beside it (and only for preferences).
            start_from_field = next(f for f in fields if f.name == "start_from_run")
            start_from = gr.Dropdown([(texts.TRAIN_START_FROM_BASE, 0)], value=start_from_field.default,
                                     label=texts.TRAIN_START_FROM, info=texts.TRAIN_START_FROM_HELP,
                                     visible=objective_field.default != "sft", elem_id="train-start-from-run")
            device_list, ticked, device_help = device_choices()
            picked = gr.CheckboxGroup(device_list, value=ticked, label=texts.TRAIN_DEVICES, info=device_help,
                                      elem_id="train-devices")
            with gr.Accordion(texts.TRAIN_ADVANCED, open=False):
                batch_note = gr.Markdown("", elem_id="train-effective-batch")
                components: list[gr.components.Component] = []
                groups: dict[str, list[Any]] = {}
                for f in fields:
                    if f.name not in ("objective", "start_from_run"):
                        groups.setdefault(f.group, []).append(f)
                # The order components are made in (objective and start-from first: they were made above).
                fields = [objective_field, start_from_field, *(f for members in groups.values() for f in members)]
                components += [objective, start_from]
                for group, members in groups.items():
                    gr.Markdown(f"**{group}**")
                    for start in range(0, len(members), 3):
                        with gr.Row():
                            for f in members[start:start + 3]:
                                components.append(_component(f))
        with gr.Column(scale=2):
            estimate_box = gr.Markdown("", elem_id="train-estimate")
            with gr.Row():
                name = gr.Textbox(label=texts.TRAIN_NAME, placeholder=texts.TRAIN_NAME_PLACEHOLDER, scale=2,
                                  elem_id="train-name")
                start_btn = gr.Button(texts.TRAIN_START, variant="primary", scale=1, interactive=not no_gpu,
                                      elem_id="train-start")
    progress = gr.HTML(progress_html(None), elem_id="train-progress")
    alarm = gr.Markdown("", elem_id="train-alarm")
    with gr.Row():
        stop_btn = gr.Button(texts.TRAIN_STOP, variant="stop", size="sm", interactive=False, elem_id="train-stop")
        resume_btn = gr.Button(texts.TRAIN_RESUME, size="sm", interactive=False, elem_id="train-resume")
    curves = gr.HTML(curves_html(None), elem_id="train-curves")
    rewards = gr.HTML("", elem_id="train-rewards")
    stats = gr.Markdown("", elem_id="train-stats")
    with gr.Accordion(texts.TRAIN_LOG, open=False):
        log = gr.Code(language=None, lines=12, label=texts.TRAIN_LOG, elem_id="train-log", interactive=False)
    runs_table = gr.Dataframe(pd.DataFrame(columns=RUN_COLUMNS), label=texts.TRAIN_RUNS, interactive=False,
                              max_height=300, elem_id="train-runs")
    timer = gr.Timer(POLL_SECONDS, active=False)

    names = [f.name for f in fields]

    def make_config(method_value: str, preset_value: str, *values: Any) -> Any:
        from studio.train.settings import TrainConfig, coerce

        data: dict[str, Any] = {"method": method_value or "lora", "preset": preset_value or "balanced"}
        for field_name, value in zip(names, values, strict=True):
            if value is None or (isinstance(value, str) and not value.strip() and field_name != "target_modules"):
                continue
            data[field_name] = coerce(field_name, value)
        if data.get("objective", "sft") == "sft":  # the hidden 'Start from' only counts for preference runs
            data.pop("start_from_run", None)
        return TrainConfig.from_dict(data)

    def on_preset(method_value: str, preset_value: str, objective_value: str) -> list:
        from studio.train.settings import TrainConfig

        cfg = TrainConfig(method=method_value or "lora", objective=objective_value or "sft").with_preset(
            preset_value or "balanced")
        values = []
        for f in fields[2:]:  # not the objective (an input here) nor where to start from (not a preset's choice)
            v = getattr(cfg, f.name)
            values.append(", ".join(v) if isinstance(v, list) else v)
        return [PRESETS[preset_value].description, *values]

    def estimate_text(pid: int | None, version_id: Any, base_ref: str, method_value: str, preset_value: str,
                      where: list[str] | None, *values: Any) -> list[str]:
        if pid is None or version_id in (None, ""):
            return [texts.TRAIN_NEED_VERSION, ""]
        if not where:
            return [f"⚠️ {texts.TRAIN_NEED_DEVICE}", ""]
        from studio.train import devices
        from studio.train.estimate import estimate
        from studio.train.workload import version_workload

        try:
            target = devices.estimate_target(devices.parse(",".join(where)))
            cfg = make_config(method_value, preset_value, *values)
            work = version_workload(ws, int(version_id), cfg)
            est = estimate(cfg, model_ref=base_ref, models_dir=ws.models_dir, **work.estimate_kwargs(),
                           **target.estimate_kwargs())
        except StudioError as exc:
            return [f"⚠️ {exc}", ""]
        lines = [f"**{est.summary()}**", f"{est.total_steps} steps · {est.trainable_params:,} of {est.params:,} "
                 "weights trained"]
        if not est.fits:
            lines.append(f"⚠️ {texts.TRAIN_WONT_FIT}")
        lines += [f"- {a}" for a in est.advice]
        return ["\n\n".join(lines[:2]) + ("\n\n" + "\n".join(lines[2:]) if lines[2:] else ""),
                texts.TRAIN_EFFECTIVE_BATCH.format(per=cfg.per_device_batch_size,
                                                   acc=cfg.gradient_accumulation_steps,
                                                   dev=_parallel_note(target),
                                                   eff=cfg.effective_batch_size_for(target.devices))]

    def run_view(pid: int | None, run_id: Any) -> list:
        from studio.train.runs import get_run, launch_next

        launch_next(ws)  # a queued run starts as soon as its device is free
        run = None
        if run_id not in (None, ""):
            try:
                run = get_run(ws, int(run_id))
            except StudioError:
                run = None
        if run is not None and run.project_id != pid:
            run = None
        log_text = ""
        if run is not None and run.log_path:
            try:
                with open(run.log_path, encoding="utf-8", errors="replace") as fh:
                    log_text = "".join(fh.readlines()[-60:])
            except OSError:
                log_text = ""
        active = bool(run and run.active)
        return [progress_html(run), alarm_md(run), curves_html(run), rewards_html(run), metrics_md(ws, run), log_text,
                runs_frame(ws, pid), gr.update(interactive=active), gr.update(interactive=bool(run and run.resumable)),
                gr.Timer(active=active or bool(run and run.status == "queued"))]

    view_outputs = [progress, alarm, curves, rewards, stats, log, runs_table, stop_btn, resume_btn, timer]

    def refresh(pid: int | None) -> list:
        from studio.models.registry import DEFAULT_BASE_MODEL
        from studio.train.runs import list_runs

        # New free-memory figures, but the person's ticks stay: a refresh (tab or project switch) must not undo them.
        device_list, _ticked, device_help = device_choices()
        where = gr.update(choices=device_list, info=device_help)
        if pid is None:
            return [gr.update(choices=[], value=None), gr.update(choices=[], value=None), where,
                    gr.update(choices=start_from_choices(ws, None, None), value=0), None, *run_view(None, None)]
        p = get_project(ws, pid)
        ref = p.base_model_ref or DEFAULT_BASE_MODEL
        versions = version_choices(ws, pid)
        runs = list_runs(ws, pid)
        chosen = runs[0].id if runs else None
        # The runs to start from may have changed (a run finished, another project): offered again, from the base.
        return [gr.update(choices=versions, value=versions[0][1] if versions else None),
                gr.update(choices=model_choices(ws, ref), value=ref), where,
                gr.update(choices=start_from_choices(ws, pid, ref), value=0), chosen, *run_view(pid, chosen)]

    refresh_outputs = [version, base, picked, start_from, selected, *view_outputs]

    def on_start(pid: int | None, version_id: Any, base_ref: str, run_name: str, method_value: str,
                 preset_value: str, where: list[str] | None, *values: Any) -> list:
        pid = require_project(pid)
        if version_id in (None, ""):
            raise gr.Error(texts.TRAIN_NEED_VERSION)
        if not where:
            raise gr.Error(texts.TRAIN_NEED_DEVICE)
        from studio.train.runs import create_run, start

        try:
            cfg = make_config(method_value, preset_value, *values)
            run = create_run(ws, pid, dataset_version_id=int(version_id), base_model_ref=base_ref,
                             config=cfg, name=run_name or "", device=",".join(where))
            run = start(ws, run.id)
        except StudioError as exc:
            raise fail(exc) from None
        gr.Info(f"{run.title}: {run.progress_text()}")
        return [run.id, *run_view(pid, run.id)]

    def on_stop(pid: int | None, run_id: Any) -> list:
        from studio.train.runs import request_stop

        if run_id is not None:
            try:
                request_stop(ws, int(run_id))
            except StudioError as exc:
                raise fail(exc) from None
        return run_view(pid, run_id)

    def on_resume(pid: int | None, run_id: Any) -> list:
        from studio.train.runs import resume

        if run_id is None:
            raise gr.Error("Pick a run in the table first.")
        try:
            resume(ws, int(run_id))
        except StudioError as exc:
            raise fail(exc) from None
        return run_view(pid, run_id)

    def on_select(pid: int | None, frame: pd.DataFrame, evt: gr.SelectData) -> list:
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        try:
            run_id = int(frame.iloc[row]["run"])
        except (IndexError, KeyError, ValueError, TypeError):
            return [gr.update(), *[gr.update()] * len(view_outputs)]
        return [run_id, *run_view(pid, run_id)]

    estimate_inputs = [current, version, base, method, preset, picked, *components]
    def on_objective(pid: int | None, base_ref: str, objective_value: str, start_value: Any) -> Any:
        return start_from_update(ws, pid, base_ref, objective_value, start_value, pick_latest=True)

    def on_base(pid: int | None, base_ref: str, objective_value: str, start_value: Any) -> Any:
        return start_from_update(ws, pid, base_ref, objective_value, start_value)

    for trigger in (preset.change, objective.change):  # preference learning wants its own learning rate
        trigger(on_preset, [method, preset, objective], [preset_help, *components[2:]]).then(
            estimate_text, estimate_inputs, [estimate_box, batch_note])
    objective.change(on_objective, [current, base, objective, start_from], start_from, show_progress="hidden")
    base.change(on_base, [current, base, objective, start_from], start_from, show_progress="hidden")
    for trigger in (version.change, base.change, method.change, picked.change):
        trigger(estimate_text, estimate_inputs, [estimate_box, batch_note], show_progress="hidden")
    for comp in components[1:]:  # [0] is the objective, handled above
        (comp.blur if isinstance(comp, gr.Number | gr.Textbox) else comp.change)(
            estimate_text, estimate_inputs, [estimate_box, batch_note], show_progress="hidden")
    start_btn.click(on_start, [current, version, base, name, method, preset, picked, *components],
                    [selected, *view_outputs])
    stop_btn.click(on_stop, [current, selected], view_outputs)
    resume_btn.click(on_resume, [current, selected], view_outputs)
    runs_table.select(on_select, [current, runs_table], [selected, *view_outputs])
    timer.tick(run_view, [current, selected], view_outputs, show_progress="hidden")

    return TabHandle(refresh, refresh_outputs)

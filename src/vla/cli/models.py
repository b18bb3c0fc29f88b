"""`vla` commands of the models area: `vla models list|show|check`, `vla bench model`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

models_app = typer.Typer(help="Policy families (presets) and their configs.", no_args_is_help=True)


def models_list(
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="time predict per preset")] = True,
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch threads while timing")] = 2,
    calls: Annotated[int, typer.Option("--calls", min=1, help="timed calls per preset")] = 30,
) -> None:
    """Lists the presets with parameter counts and per-call latency (untrained weights, tabletop shapes)."""
    import numpy as np
    import torch

    from vla.models.bench import build_for_bench, time_predict
    from vla.presets import describe, get_preset, list_presets

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        typer.echo(f"{'preset':<10} {'params':>8} {'ms/call':>8}  description")
        for name in list_presets():
            policy = build_for_bench(get_preset(name))
            ms = (
                f"{np.median(time_predict(policy, calls=calls, warmup=3)) * 1e3:8.2f}"
                if latency
                else f"{'-':>8}"
            )
            typer.echo(f"{name:<10} {policy.num_params() / 1e6:>7.2f}M {ms}  {describe(name)}")
    finally:
        torch.set_num_threads(before)


def models_show(
    preset: Annotated[str, typer.Argument(help="preset name, e.g. default")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value overrides, e.g. head.kind=flow")
    ] = None,
) -> None:
    """Prints a preset's config as JSON (after overrides), as it would be saved in config.json."""
    from vla.models import parse_overrides
    from vla.presets import get_preset

    try:
        cfg = get_preset(preset).override(parse_overrides(overrides or []))
    except (KeyError, ValueError) as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(json.dumps(cfg.to_dict(), indent=2))


def bench_model(
    preset: Annotated[
        list[str] | None, typer.Option("--preset", help="preset(s) to time; default: default")
    ] = None,
    all_presets: Annotated[bool, typer.Option("--all", help="time every preset")] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="config override key=value")] = None,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 2,
    calls: Annotated[int, typer.Option("--calls", min=1)] = 200,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    train_steps: Annotated[int, typer.Option("--train-steps", min=0, help="0 skips training")] = 20,
) -> None:
    """Per-call predict latency (median, p95) and training samples/s; prints a table and a JSON line."""
    from vla.models.bench import ModelBenchConfig, format_table, run_model_bench
    from vla.presets import get_preset, list_presets

    names = list_presets() if all_presets else (preset or ["default"])
    try:
        for n in names:
            get_preset(n)
        cfgs = [
            ModelBenchConfig(
                preset=n,
                overrides=tuple(overrides or ()),
                threads=threads,
                calls=calls,
                batch_size=batch_size,
                train_steps=train_steps,
            )
            for n in names
        ]
    except (KeyError, ValueError) as e:
        raise typer.BadParameter(str(e)) from e
    rows = [run_model_bench(c) for c in cfgs]
    typer.echo(format_table(rows))
    summary = rows[0] if len(rows) == 1 else {"presets": rows}
    typer.echo(json.dumps(summary, sort_keys=True))


def models_check(
    checkpoint: Annotated[str, typer.Argument(help="checkpoint directory")],
    instructions: Annotated[list[str] | None, typer.Argument(help="instructions to judge")] = None,
    fit: Annotated[
        str, typer.Option("--fit", help="(re)fit the check from this dataset's instructions first")
    ] = "",
    skills: Annotated[
        bool,
        typer.Option(
            "--skills", help="with --fit: also fit the skill check (SmolLM2; refuses unknown verbs)"
        ),
    ] = False,
    suite: Annotated[
        str, typer.Option(help="suite whose object names the skill check's examples use")
    ] = "tabletop",
) -> None:
    """Judges instructions with a checkpoint's instruction check (what `vla eval` and the controllers
    hold on); `--fit DATA.h5` adds the check to a checkpoint trained before it existed. One JSON line
    per instruction."""
    from pathlib import Path

    from vla.models.instruction_check import FILE, InstructionCheck

    if fit:
        from vla.data.reader import EpisodeDataset

        with EpisodeDataset(fit) as reader:
            check = InstructionCheck.fit(list(reader.instructions))
        check.save(checkpoint)
        typer.echo(f"wrote {Path(checkpoint) / FILE} ({len(check.instructions)} training instructions)")
        if skills:
            from vla.envs import get_suite
            from vla.models.skill_check import SkillCheck

            decl = getattr(get_suite(suite), "presence_declaration", None)
            objects = sorted(decl()["objects"]) if decl else []
            with EpisodeDataset(fit) as reader:
                skill_check, summary = SkillCheck.fit(
                    list(reader.instructions), list(reader.families), objects
                )
            typer.echo(f"wrote {skill_check.save(checkpoint)} ({json.dumps(summary)})")
    elif skills:
        raise typer.BadParameter(
            "--skills fits from a dataset: give --fit DATA.h5 too", param_hint="--skills"
        )
    from vla.models.grounding_check import GroundingCheck

    loaded = GroundingCheck.load(checkpoint)
    if loaded is None or loaded.words is None:
        raise typer.BadParameter(
            f"checkpoint '{checkpoint}' has no {FILE}; add one with --fit DATA.h5 (the training dataset)",
            param_hint="checkpoint",
        )
    for text in instructions or []:
        v = loaded.judge(text, None)  # words and skill; the scene needs a frame (`vla models presence`)
        typer.echo(
            json.dumps(
                {
                    "instruction": text,
                    "ok": v.ok,
                    "kind": v.kind,
                    "reason": v.reason,
                    "similarity": round(v.similarity, 3),
                    "nearest": v.nearest,
                }
            )
        )


def models_presence(
    checkpoint: Annotated[str, typer.Argument(help="checkpoint directory")],
    instructions: Annotated[
        list[str] | None, typer.Argument(help="instructions to judge on the first frame of --seed")
    ] = None,
    suite: Annotated[str, typer.Option(help="suite whose scenes the check learns")] = "tabletop",
    scenes: Annotated[int, typer.Option(help="training scenes to render (0: keep the saved check)")] = 4000,
    val_scenes: Annotated[int, typer.Option(help="validation scenes the threshold is read on")] = 600,
    epochs: Annotated[int, typer.Option(help="passes over the training scenes")] = 8,
    workers: Annotated[int, typer.Option(help="rendering processes")] = 2,
    family: Annotated[str, typer.Option(help="family of the scene the instructions are judged in")] = "",
    seed: Annotated[int, typer.Option(help="episode seed of that scene")] = 100000,
) -> None:
    """Trains a checkpoint's presence check (refuses an instruction naming an object the scene camera
    does not show; docs/tabletop.md) and saves it as presence_check.safetensors; with instructions,
    judges them in one scene of the suite. One JSON line per instruction, then the fit's summary."""
    from vla.models.presence import FILE, PresenceCheck

    if scenes > 0:
        from vla.models.presence_fit import fit_presence

        try:
            _, summary = fit_presence(
                checkpoint,
                suite_name=suite,
                scenes=scenes,
                val_scenes=val_scenes,
                epochs=epochs,
                workers=workers,
                log=typer.echo,
            )
        except (FileNotFoundError, ValueError) as e:
            raise typer.BadParameter(str(e), param_hint="checkpoint") from e
        typer.echo(f"wrote {Path(checkpoint) / FILE}")
    check = PresenceCheck.load(checkpoint)
    if check is None:
        raise typer.BadParameter(f"checkpoint '{checkpoint}' has no {FILE}; fit one with --scenes N")
    if instructions:
        from vla.envs import get_suite

        env = get_suite(suite).make(family or get_suite(suite).families[0], image_size=check.spec.image_size)
        try:
            obs, _ = env.reset(seed=seed)
            for text in instructions:
                v = check(text, obs["images"])
                typer.echo(json.dumps({"instruction": text, "ok": v.ok, "kind": v.kind, "reason": v.reason}))
        finally:
            env.close()
    if scenes > 0:
        typer.echo(json.dumps(summary, sort_keys=True))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds this area's commands to the root app and the `vla bench` group."""
    models_app.command("list")(models_list)
    models_app.command("show")(models_show)
    models_app.command("check")(models_check)
    models_app.command("presence")(models_presence)
    app.add_typer(models_app, name="models")
    bench.command("model")(bench_model)

"""`vla` commands of the env area: `vla env list|show|expert` and `vla bench sim`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer


def _image_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise typer.BadParameter(f"image size must look like 96x96 (height x width), got '{text}'") from e
    return h, w


def env_list() -> None:
    """Lists suites, their families and splits, with example instructions."""
    from vla.envs import get_suite, list_suites

    for name in list_suites():
        suite = get_suite(name)
        typer.echo(f"suite {name}")
        typer.echo(f"  splits: {', '.join(suite.splits)}")
        for family in suite.families:
            examples: list[str] = getattr(suite, "example_instructions", lambda f: [])(family)
            typer.echo(f"  {family:14s} e.g. " + " | ".join(examples[:2]))


def env_show(
    suite_name: Annotated[str, typer.Argument(help="suite, e.g. tabletop")],
    task: Annotated[str, typer.Option("--task", help="a family name or an instruction")] = "pick_up",
    out: Annotated[Path, typer.Option("--out", help="PNG to write")] = Path("frame.png"),
    seed: Annotated[int, typer.Option("--seed")] = 0,
    split: Annotated[str, typer.Option("--split")] = "train",
    image_size: Annotated[str, typer.Option("--image-size", help="HxW")] = "256x256",
    robot: Annotated[
        str,
        typer.Option(
            "--robot", help="the suite's robot option, e.g. tabletop's 'humanoid'; default: its own"
        ),
    ] = "",
) -> None:
    """Renders the first frame of an episode, every camera side by side, to a PNG."""
    from PIL import Image

    from vla.envs import get_suite
    from vla.envs.tabletop.show import resolve_task

    suite = get_suite(suite_name)
    opts = {"robot": robot} if robot else {}
    family, seed, note = resolve_task(suite, task, split=split, seed=seed, **opts)
    env = suite.make(family, split=split, image_size=_image_size(image_size), **opts)
    try:
        obs, _ = env.reset(seed=seed)
        frame = np.concatenate([obs["images"][cam] for cam in obs["images"]], axis=1)
    finally:
        env.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(out)
    if note:
        typer.echo(note)
    typer.echo(
        f"{family} seed {seed}: '{obs['instruction']}' -> {out} (left to right: {', '.join(obs['images'])})"
    )


def env_expert(
    suite_name: Annotated[str, typer.Argument(help="suite, e.g. tabletop")],
    episodes_per_task: Annotated[int, typer.Option("--episodes-per-task", min=1)] = 10,
    split: Annotated[str, typer.Option("--split")] = "train",
    family: Annotated[list[str] | None, typer.Option("--family", help="repeatable; default all")] = None,
    benchmark: Annotated[
        str, typer.Option("--benchmark", help="a benchmark the suite declares, e.g. metaworld's mt10 / mt50")
    ] = "",
    video: Annotated[Path | None, typer.Option("--video", help="MP4 of the first episode per family")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1)] = 1,
    seed: Annotated[int, typer.Option("--seed", help="first episode seed")] = 0,
    randomize: Annotated[bool, typer.Option("--randomize/--no-randomize")] = False,
    action_mode: Annotated[
        str,
        typer.Option("--action-mode", help="ee_delta | joint_pos (the humanoid maps ee_delta to whole_body)"),
    ] = "ee_delta",
    robot: Annotated[
        str,
        typer.Option(
            "--robot", help="the suite's robot option, e.g. tabletop's 'humanoid'; default: its own"
        ),
    ] = "",
) -> None:
    """Runs the scripted experts and prints their success per family (last line: JSON)."""
    from dataclasses import replace

    from vla.envs import get_suite
    from vla.envs.base import family_groups, resolve_families
    from vla.rollout import iter_episodes, make_jobs

    suite = get_suite(suite_name)
    env_options = (("robot", robot),) if robot else ()
    try:
        families = list(
            resolve_families(suite, families=family or [], benchmark=benchmark, env_options=env_options)
        )
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0] if e.args else e)) from None
    jobs = make_jobs(
        suite_name,
        families,
        episodes_per_family=episodes_per_task,
        split=split,
        first_seed=seed,
        randomize=randomize,
        action_mode=action_mode,
        env_options=env_options,
    )
    if video is not None:  # the first episode of each family, recorded in the same run
        firsts = {jobs.index(next(j for j in jobs if j.family == f)) for f in families}
        jobs = [replace(j, record_frames=i in firsts) for i, j in enumerate(jobs)]
    start = time.perf_counter()
    wins: dict[str, int] = dict.fromkeys(families, 0)
    steps = 0
    recorded: dict[int, np.ndarray] = {}
    # The action modes the envs ran in (their episode_meta), not the option asked for: a robot may
    # map the suite's default to its own space (the humanoid's "ee_delta" default is "whole_body").
    modes: dict[str, None] = {}
    for i, res in iter_episodes(jobs, workers=workers):
        wins[res.job.family] += int(res.success)
        modes[str(res.meta.get("action_mode", res.job.action_mode))] = None
        steps += res.steps
        if res.frames is not None:
            recorded[i] = res.frames
    wall = time.perf_counter() - start
    width = max(14, *(len(f) for f in families))
    typer.echo(f"{'family':{width}s} {'success':>8s}")
    per_family = {f: wins[f] / episodes_per_task for f in families}
    for f in families:
        typer.echo(f"{f:{width}s} {per_family[f]:8.2f}  ({wins[f]}/{episodes_per_task})")
    overall = sum(wins.values()) / len(jobs)
    groups = family_groups(suite)
    per_group: dict[str, list[float]] = {}
    for f in families:
        if f in groups:
            per_group.setdefault(groups[f], []).append(per_family[f])
    if video is not None:
        import imageio

        frames = [fr for i in sorted(recorded) for fr in recorded[i]]
        video.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(video, frames, fps=10, codec="libx264", macro_block_size=1)
        typer.echo(f"video of {len(recorded)} episodes -> {video}")
    typer.echo(
        json.dumps(
            {
                "expert_success": round(overall, 4),
                "per_family": {f: round(v, 4) for f, v in per_family.items()},
                **(
                    {"per_group": {g: round(float(np.mean(v)), 4) for g, v in per_group.items()}}
                    if per_group
                    else {}
                ),
                "episodes": len(jobs),
                "split": split,
                "action_mode": ",".join(modes),
                "workers": workers,
                **({"robot": robot} if robot else {}),
                "steps_per_s": round(steps / wall, 1),
            }
        )
    )


def bench_sim(
    seconds: Annotated[float, typer.Option("--seconds", min=0.5)] = 10.0,
    processes: Annotated[int, typer.Option("--processes", min=0, help="0: one per core")] = 0,
    image_size: Annotated[str, typer.Option("--image-size", help="HxW")] = "96x96",
    robot: Annotated[
        str,
        typer.Option("--robot", help="the tabletop suite's robot option, e.g. 'humanoid'; default: its own"),
    ] = "",
) -> None:
    """env.step per second (every camera rendered) in one process and one process per core."""
    from vla.envs import get_suite
    from vla.envs.base import option_families
    from vla.envs.tabletop.speed import SUITE, measure_parallel, measure_steps

    size = _image_size(image_size)
    env_options = (("robot", robot),) if robot else ()
    try:  # before any process starts: an unknown robot is a usage error naming the known ones
        option_families(get_suite(SUITE), env_options)
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0] if e.args else e), param_hint="--robot") from None
    n = processes or os.cpu_count() or 1
    one = measure_steps(seconds, image_size=size, env_options=env_options)
    many = measure_parallel(seconds, processes=n, image_size=size, env_options=env_options)
    all_cores = sum(r.steps_per_s for r in many)
    all_wall = sum(r.wall_steps_per_s for r in many)
    typer.echo(f"{'setting':20s} {'steps':>6s} {'env.step/s':>11s} {'wall step/s':>12s} {'step/CPU-s':>11s}")
    rows = [("1 process", [one]), (f"{n} processes (sum)", many)]
    for name, res in rows:
        typer.echo(
            f"{name:20s} {sum(r.steps for r in res):6d} {sum(r.steps_per_s for r in res):11.1f} "
            f"{sum(r.wall_steps_per_s for r in res):12.1f} {sum(r.steps_per_cpu_s for r in res):11.1f}"
        )
    typer.echo(
        json.dumps(
            {
                "steps_per_s_one_process": round(one.steps_per_s, 1),
                "steps_per_s_all_cores": round(all_cores, 1),
                "wall_steps_per_s_one_process": round(one.wall_steps_per_s, 1),
                "wall_steps_per_s_all_cores": round(all_wall, 1),
                "steps_per_cpu_s": round(one.steps_per_cpu_s, 1),
                "processes": n,
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "image_size": list(size),
                "cameras": one.cameras,
                **({"robot": robot} if robot else {}),
                "seconds": seconds,
            }
        )
    )


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds this area's commands to the root app and the `vla bench` group."""
    env_app = typer.Typer(
        help="Simulated environments: list, show, run scripted experts.", no_args_is_help=True
    )
    env_app.command("list")(env_list)
    env_app.command("show")(env_show)
    env_app.command("expert")(env_expert)
    app.add_typer(env_app, name="env")
    bench.command("sim")(bench_sim)

"""`vla` commands of the data area: `vla collect`, `vla data info|stats|show|export|import`, `vla bench data`."""

from __future__ import annotations

import json
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

data_app = typer.Typer(help="Inspect, convert and visualize demonstration datasets.", no_args_is_help=True)


class Format(StrEnum):
    lerobot = "lerobot"
    rosbag2 = "rosbag2"


def collect(
    suite: Annotated[str, typer.Argument(help="suite to record, e.g. tabletop")],
    out: Annotated[Path, typer.Option("--out", help=".h5 dataset (appended to if it exists)")],
    episodes_per_task: Annotated[int, typer.Option("--episodes-per-task", min=1)] = 50,
    workers: Annotated[int, typer.Option("--workers", min=1, help="worker processes (one per core)")] = 2,
    families: Annotated[str, typer.Option("--families", help="comma-separated; default all")] = "",
    benchmark: Annotated[
        str, typer.Option("--benchmark", help="a benchmark the suite declares, e.g. metaworld's mt10 / mt50")
    ] = "",
    split: Annotated[str, typer.Option("--split")] = "train",
    keep_failed: Annotated[bool, typer.Option("--keep-failed", help="also keep failed episodes")] = False,
    image_size: Annotated[int, typer.Option("--image-size", min=8)] = 96,
    seed: Annotated[int, typer.Option("--seed", help="first episode seed")] = 0,
    randomize: Annotated[bool, typer.Option("--randomize/--no-randomize")] = False,
    robot: Annotated[
        str,
        typer.Option(
            "--robot", help="the suite's robot option, e.g. tabletop's 'humanoid'; default: its own"
        ),
    ] = "",
) -> None:
    """Records scripted-expert demonstrations of a suite into an HDF5 dataset, in parallel."""
    from vla.cli.progress import Progress
    from vla.data.collect import CollectConfig, CollectReport, run_collection
    from vla.envs import get_suite
    from vla.envs.base import resolve_families

    env_options = (("robot", robot),) if robot else ()
    try:
        chosen = resolve_families(
            get_suite(suite),
            families=[f.strip() for f in families.split(",") if f.strip()],
            benchmark=benchmark,
            env_options=env_options,
        )
    except KeyError as e:
        raise typer.BadParameter(str(e.args[0] if e.args else e)) from None
    cfg = CollectConfig(
        suite=suite,
        episodes_per_task=episodes_per_task,
        families=chosen,
        split=split,
        workers=workers,
        keep_failed=keep_failed,
        image_size=image_size,
        seed=seed,
        randomize=randomize,
        env_options=env_options,
    )
    n_families = len(cfg.families)
    bar = Progress(episodes_per_task * n_families, unit="ep", desc=f"collect {suite}")
    done = [0]

    def progress(r: CollectReport) -> None:
        bar.update(r.episodes - done[0])
        done[0] = r.episodes
        bar.set_postfix(failed=sum(r.failures.values()), steps_s=f"{r.steps_per_second:.0f}")

    try:
        report = run_collection(cfg, out, progress=progress)
    finally:
        bar.close()
    for fam in report.recorded:
        typer.echo(f"  {fam:14s} kept {report.recorded[fam]:4d}  failed {report.failures[fam]:3d}")
    typer.echo(
        f"wrote {report.episodes} episode{'' if report.episodes == 1 else 's'} ({report.steps} steps) to {out} "
        f"in {report.wall_seconds:.1f} s "
        f"wall: {report.steps_per_second:.1f} steps/s, {report.attempts} attempts, workers={workers}"
    )


def collect_grounding(
    suite: Annotated[str, typer.Argument(help="suite whose scenes to label, e.g. tabletop")],
    out: Annotated[Path, typer.Option("--out", help="new .h5 grounding file")],
    scenes: Annotated[int, typer.Option("--scenes", min=1, help="episode scenes to render")] = 5000,
    views: Annotated[
        int,
        typer.Option(
            "--views", min=1, help="views per scene: the episode's first frame, then random arm poses"
        ),
    ] = 1,
    workers: Annotated[int, typer.Option("--workers", min=1, help="worker processes (one per core)")] = 2,
    families: Annotated[str, typer.Option("--families", help="comma-separated; default all")] = "",
    split: Annotated[str, typer.Option("--split")] = "train",
    image_size: Annotated[int, typer.Option("--image-size", min=8)] = 96,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Renders labelled scenes (instruction -> object positions) for `vla train --grounding`."""
    from vla.cli.progress import Progress
    from vla.data.grounding import collect_grounding as run

    bar = Progress(scenes * views, unit="view", desc=f"grounding {suite}")
    try:
        res = run(
            suite,
            out=out,
            scenes=scenes,
            views=views,
            families=tuple(f.strip() for f in families.split(",") if f.strip()),
            split=split,
            workers=workers,
            image_size=image_size,
            seed=seed,
            progress=bar.update,
        )
    finally:
        bar.close()
    typer.echo(
        f"wrote {res['views']} labelled views of {res['scenes']} scenes to {out} in {res['seconds']:.1f} s "
        f"({res['views'] / max(res['seconds'], 1e-9):.0f} views/s, workers={workers})"
    )


def info(path: Annotated[Path, typer.Argument(help=".h5 dataset")]) -> None:
    """Prints a dataset's size, tasks, families, success rate and per-dimension statistics."""
    from vla.data.reader import EpisodeDataset

    with EpisodeDataset(path) as ds:
        lengths = ds.lengths
        typer.echo(f"file: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
        typer.echo(f"episodes: {len(ds)}")
        typer.echo(
            f"steps: {ds.num_steps}" + (f" (per episode {lengths.min()}..{lengths.max()})" if len(ds) else "")
        )
        typer.echo(f"suite: {ds.suite or '-'}   robot: {ds.embodiment.name if ds.embodiment else '-'}")
        typer.echo(f"cameras: {', '.join(ds.cameras)}   image: {ds.image_size[0]}x{ds.image_size[1]}")
        typer.echo(f"state dim: {ds.state_dim}   action dim: {ds.action_dim}")
        typer.echo(f"instructions: {len(set(ds.instructions))} distinct")
        if len(ds):
            success = sum(i.success for i in ds.infos) / len(ds)
            typer.echo(f"success rate: {success:.1%}")
        fams: dict[str, int] = {}
        for f in ds.families:
            fams[f or "-"] = fams.get(f or "-", 0) + 1
        typer.echo("families: " + ", ".join(f"{k} ({v})" for k, v in sorted(fams.items())))
        if ds.stats is None:
            typer.echo(f"stats: not computed (run `vla data stats {path}`)")
            return
        for name, feat, labels in (
            ("state", ds.stats.state, _labels(ds, "state")),
            ("action", ds.stats.action, _labels(ds, "action")),
        ):
            typer.echo(f"{name} statistics ({feat.count} samples):")
            typer.echo(
                f"  {'dim':12s} {'mean':>9s} {'std':>9s} {'min':>9s} {'q01':>9s} {'q99':>9s} {'max':>9s}"
            )
            for d in range(feat.dim):
                vals = (feat.mean[d], feat.std[d], feat.min[d], feat.q01[d], feat.q99[d], feat.max[d])
                typer.echo(f"  {labels[d][:12]:12s} " + " ".join(f"{v:9.4f}" for v in vals))


def _labels(ds: object, kind: str) -> list[str]:
    emb = getattr(ds, "embodiment", None)
    if emb is None:
        n = getattr(ds, "state_dim" if kind == "state" else "action_dim")
        return [f"{kind}_{i}" for i in range(n)]
    fields = (
        [(f.name, f.size) for f in emb.state_fields]
        if kind == "state"
        else [(g.name, g.size) for g in emb.action_space().groups]
    )
    return [name if size == 1 else f"{name}[{i}]" for name, size in fields for i in range(size)]


def stats(path: Annotated[Path, typer.Argument(help=".h5 dataset")]) -> None:
    """(Re)computes the normalization statistics and stores them in the file."""
    from vla.data.stats import compute_and_store

    s = compute_and_store(path)
    typer.echo(f"stored statistics of {s.state.count} steps in {path}")


def show(
    path: Annotated[Path, typer.Argument(help=".h5 dataset")],
    episode: Annotated[int, typer.Option("--episode", help="episode index")] = 0,
    out: Annotated[Path, typer.Option("--out", help=".mp4, .gif or .png (contact sheet)")] = Path(
        "episode.mp4"
    ),
) -> None:
    """Renders an episode: cameras side by side, instruction and action plot in every frame."""
    from vla.data.reader import EpisodeDataset
    from vla.data.show import write_episode_media

    with EpisodeDataset(path) as ds:
        ep = ds.episode(episode)
        hz = ds.embodiment.control_hz if ds.embodiment else 10.0
        write_episode_media(ep, out, fps=hz, action_names=_labels(ds, "action"))
    typer.echo(f"episode {episode} ('{ep.instruction}', {len(ep)} steps) -> {out}")


def export(
    path: Annotated[Path, typer.Argument(help=".h5 dataset")],
    out: Annotated[Path, typer.Option("--out", help="directory to create")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.lerobot,
    crf: Annotated[int, typer.Option("--crf", help="h264 quality, 0 best .. 51 worst")] = 18,
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
    storage: Annotated[str, typer.Option("--storage", help="rosbag2 storage: mcap | sqlite3")] = "mcap",
    topic_map: Annotated[Path | None, typer.Option("--map", help="rosbag2 topic map (YAML)")] = None,
) -> None:
    """Exports a dataset to another format (LeRobotDataset v3.0, or a rosbag2)."""
    if fmt == Format.rosbag2:
        from vla.data.rosbag2_export import export_rosbag2
        from vla.data.rosbag2_format import TopicMap

        try:
            tm = TopicMap.load(topic_map) if topic_map else None
            export_rosbag2(path, out, storage=storage, topics=tm, overwrite=overwrite)
        except (ValueError, FileNotFoundError, FileExistsError) as e:
            raise typer.BadParameter(str(e)) from e
        typer.echo(f"exported {path} -> {out} (rosbag2, {storage}; play with `ros2 bag play {out}`)")
        return
    from vla.data.lerobot_export import VideoConfig, export_lerobot

    export_lerobot(path, out, video=VideoConfig(crf=crf), overwrite=overwrite)
    typer.echo(
        f"exported {path} -> {out} ({fmt.value} v3.0; load with LeRobotDataset('local/{out.name}', root='{out}'))"
    )


def import_(
    src: Annotated[Path, typer.Argument(help="dataset directory")],
    out: Annotated[Path, typer.Option("--out", help=".h5 dataset to create")],
    fmt: Annotated[Format, typer.Option("--format")] = Format.lerobot,
    topic_map: Annotated[Path | None, typer.Option("--map", help="rosbag2 topic map (YAML)")] = None,
) -> None:
    """Imports a dataset from another format (LeRobotDataset v3.0, or a rosbag2) and computes its statistics."""
    from vla.data.reader import EpisodeDataset

    if fmt == Format.rosbag2:
        from vla.data.rosbag2_format import TopicMap
        from vla.data.rosbag2_import import import_rosbag2

        try:
            import_rosbag2(src, out, topics=TopicMap.load(topic_map) if topic_map else None)
        except (ValueError, FileNotFoundError, FileExistsError) as e:
            raise typer.BadParameter(str(e)) from e
    else:
        from vla.data.lerobot_import import import_lerobot

        import_lerobot(src, out)
    with EpisodeDataset(out) as ds:
        typer.echo(f"imported {fmt.value} {src} -> {out}: {len(ds)} episodes, {ds.num_steps} steps")


def bench_data(
    path: Annotated[Path | None, typer.Option("--path", help="dataset; default: a synthetic one")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    obs_horizon: Annotated[int, typer.Option("--obs-horizon", min=1)] = 2,
    action_horizon: Annotated[int, typer.Option("--action-horizon", min=1)] = 16,
    batches: Annotated[int, typer.Option("--batches", min=1)] = 30,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="also time augmentation")] = False,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 1,
) -> None:
    """Sampler throughput in windows/s (median over batches); ends with a JSON line."""
    import torch

    from vla.data.bench import sampler_throughput, write_synthetic

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        source = path
        if source is None:
            source = write_synthetic(Path(tmp) / "synthetic.h5", episodes=40, steps=100, image_size=96)
        res = sampler_throughput(
            source,
            batch_size=batch_size,
            obs_horizon=obs_horizon,
            action_horizon=action_horizon,
            batches=batches,
            augment=augment,
        )
    res["dataset"] = str(path) if path else "synthetic 40x100 steps, 2 cameras 96x96"
    typer.echo(f"{'batch':>6s} {'T':>3s} {'H':>3s} {'augment':>8s} {'windows/s':>10s} {'ms/batch':>9s}")
    typer.echo(
        f"{batch_size:6d} {obs_horizon:3d} {action_horizon:3d} {augment!s:>8s} "
        f"{res['windows_per_s']:10.0f} {res['ms_per_batch']:9.2f}"
    )
    typer.echo(json.dumps({"bench": "data", **res}))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds this area's commands to the root app and the `vla bench` group."""
    app.command("collect")(collect)
    app.command("collect-grounding")(collect_grounding)
    data_app.command("info")(info)
    data_app.command("stats")(stats)
    data_app.command("show")(show)
    data_app.command("export")(export)
    data_app.command("import")(import_)
    app.add_typer(data_app, name="data")
    bench.command("data")(bench_data)

"""`vla dagger`: thin wiring of `DaggerConfig` to `vla.dagger.run_dagger`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

Opt = typer.Option


def dagger_cmd(
    dataset: Annotated[Path, typer.Argument(help="the expert demonstrations the checkpoint was trained on")],
    checkpoint: Annotated[Path, Opt(help="round 0's policy (its run's train_config.json is the recipe)")],
    out: Annotated[Path, Opt(help="run directory (re-run the same command to resume)")] = Path("runs/dagger"),
    suite: Annotated[str, Opt(help="simulator suite")] = "tabletop",
    split: Annotated[str, Opt(help="the split the policy is rolled out in")] = "train",
    families: Annotated[str | None, Opt(help="comma-separated families (default: all)")] = None,
    rounds: Annotated[int, Opt(min=1, help="rounds (a re-run with more continues)")] = 2,
    episodes_per_task: Annotated[int, Opt(min=1, help="labelled rollouts per family and round")] = 20,
    beta: Annotated[float, Opt(min=0.0, max=1.0, help="round 1's share of expert-executed steps")] = 0.5,
    beta_decay: Annotated[float, Opt(min=0.0, max=1.0, help="beta factor per round")] = 0.5,
    steps: Annotated[int, Opt(min=1, help="fine-tuning steps per round")] = 1000,
    lr: Annotated[float, Opt(help="peak learning rate of the fine-tuning")] = 3e-4,
    workers: Annotated[int, Opt(min=1, help="rollout processes")] = 2,
    mode: Annotated[
        str, Opt(help="dagger: label every visited state (beta-mixing); hg: HG-DAgger, corrections only")
    ] = "dagger",
    tolerance: Annotated[
        float, Opt(help="hg: the takeover tolerance, a fraction of each action dimension's range")
    ] = 0.25,
) -> None:
    """DAgger: roll the policy out, label every visited state with the expert, aggregate, fine-tune."""
    from vla.dagger import DaggerConfig, run_dagger

    try:
        cfg = DaggerConfig(
            dataset=str(dataset),
            checkpoint=str(checkpoint),
            out=str(out),
            suite=suite,
            split=split,
            families=tuple(f for f in (families or "").split(",") if f),
            rounds=rounds,
            episodes_per_task=episodes_per_task,
            beta=beta,
            beta_decay=beta_decay,
            steps=steps,
            lr=lr,
            workers=workers,
            mode=mode,
            tolerance=tolerance,
        )
        state = run_dagger(cfg, say=typer.echo)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(state))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds `dagger` to the root app."""
    del bench
    app.command("dagger")(dagger_cmd)

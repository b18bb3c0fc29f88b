"""`vla` commands of the planning area: `vla run "instruction"`, `vla bench planner`, and the long-horizon
splits of `vla eval` (`eval_long_horizon`, called by `vla eval` for a split the suite declares long).

Thin wiring of flags to `vla.planning` (docs/planning.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from vla.checkpoint_layout import not_a_checkpoint

Opt = typer.Option


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg="red", err=True)
    raise typer.Exit(2)


def planner_options(
    url: str | None, model: str | None, timeout: float | None, retries: int | None, threads: int
) -> dict[str, Any]:
    """The `build_planner` options of the `--planner-*` flags (None: the backend's default)."""
    return {"url": url, "model": model, "timeout_s": timeout, "retries": retries, "threads": threads}


def _planner(name: str, suite: Any, opts: dict[str, Any]) -> Any:
    from vla.planning.registry import build_planner

    try:
        return build_planner(name, suite.skills, **opts)
    except (ValueError, FileNotFoundError, ImportError) as e:
        _fail(e)


def _checkpoint(checkpoint: Path | None, executor: str) -> str:
    """The checkpoint the skills run with ("" for the scripted expert), or a usage error."""
    from vla.planning.run import EXECUTORS

    if executor not in EXECUTORS:
        raise typer.BadParameter(
            f"'{executor}' is not an executor; executors: {EXECUTORS}", param_hint="--executor"
        )
    if executor == "expert":
        if checkpoint is not None:
            raise typer.BadParameter("--executor expert runs no checkpoint: drop --checkpoint")
        return ""
    if checkpoint is None:
        raise typer.BadParameter(
            "the policy executor needs --checkpoint DIR (or run the scripted expert: --executor expert)"
        )
    if not (checkpoint / "config.json").is_file():
        raise typer.BadParameter(not_a_checkpoint(checkpoint))
    return str(checkpoint)


def run_cmd(
    instruction: Annotated[str, typer.Argument(help="the request, e.g. 'put every block in the bowl'")],
    checkpoint: Annotated[Path | None, Opt(help="policy checkpoint that executes the skills")] = None,
    executor: Annotated[
        str, Opt(help="policy (needs --checkpoint) | expert (the scripted expert)")
    ] = "policy",
    planner: Annotated[str, Opt(help="smollm2 | smollm2-llamacpp | rules | openai | anthropic")] = "smollm2",
    suite: Annotated[str, Opt(help="simulator suite")] = "tabletop",
    kind: Annotated[str, Opt(help="scene of this long-horizon kind (default: the first that fits)")] = "",
    seed: Annotated[int, Opt(help="scene seed (with --kind), else the first seed searched")] = 0,
    retries: Annotated[int, Opt(min=0, help="rephrased retries of a failed step")] = 1,
    replans: Annotated[int, Opt(min=0, help="re-plans per request")] = 2,
    inject_drops: Annotated[
        float, Opt(min=0.0, max=1.0, help="share of step attempts whose grasp slips")
    ] = 0.0,
    planner_url: Annotated[str | None, Opt(help="HTTP planners: base URL")] = None,
    planner_model: Annotated[str | None, Opt(help="HTTP planners: model name")] = None,
    planner_timeout: Annotated[float | None, Opt(help="HTTP planners: seconds per request")] = None,
    planner_retries: Annotated[int | None, Opt(help="HTTP planners: retries after 5xx / timeouts")] = None,
    threads: Annotated[int, Opt(min=1, help="threads of the offline planner's language model")] = 1,
) -> None:
    """Plan a long-horizon request and execute it step by step in simulation (last line: JSON)."""
    from vla.envs import get_suite
    from vla.planning.executor import ExecutorConfig
    from vla.planning.plan import PlanError
    from vla.planning.run import find_scene, long_horizon_suite, run_instruction

    ckpt = _checkpoint(checkpoint, executor)
    try:
        lh = long_horizon_suite(get_suite(suite), suite)
        split = lh.long_horizon_splits[0]
        where = (kind, seed) if kind else find_scene(lh, instruction, split=split, first_seed=seed)
    except (ValueError, KeyError, PlanError) as e:
        _fail(e)
    plan_with = _planner(
        planner, lh, planner_options(planner_url, planner_model, planner_timeout, planner_retries, threads)
    )
    _, scene, _ = lh.long_horizon_request(where[0], split=split, seed=where[1])
    typer.echo(
        f"scene: {suite} {where[0]} seed {where[1]}: {', '.join(scene.objects)}; {', '.join(scene.containers)}"
    )
    result, sim = run_instruction(
        lh,
        plan_with,
        instruction,
        kind=where[0],
        seed=where[1],
        split=split,
        checkpoint=ckpt,
        executor=ExecutorConfig(retries=retries, replans=replans, seed=where[1]),
        inject_drops=inject_drops,
    )
    if not result.plan:
        typer.secho(f"error: {result.stopped}", fg="red", err=True)
        raise typer.Exit(2)
    latency = ", ".join(f"{1e3 * t:.0f}" for t in result.plan_latency_s)
    typer.echo(f"plan ({getattr(plan_with, 'name', planner)}, {latency} ms):")
    for i, step in enumerate(result.plan, 1):
        typer.echo(f"  {i}. {lh.skills.text(step)}")
    for a, confirmed in zip(result.attempts, sim["sim_step_success"], strict=True):
        verdict = "success" if a.success else "failure"
        retry = f" (retry {a.attempt})" if a.attempt else ""
        typer.echo(
            f"step '{a.text}'{retry}: {verdict}, {a.reason}, {a.control_steps} control steps "
            f"[simulator: {'done' if confirmed else 'not done'}]"
        )
    state = "finished" if result.finished else f"stopped: {result.stopped}"
    typer.echo(
        f"{state}; re-plans {result.replans}; faults injected {sim['faults_injected']}; "
        f"final scene (simulator): {'every planned goal holds' if sim['final_scene_success'] else 'NOT fulfilled'}"
    )
    typer.echo(json.dumps({**result.to_json(), **sim}))
    if not result.finished:
        raise typer.Exit(1)


def eval_long_horizon(
    *,
    suite: str,
    split: str,
    checkpoint: Path | None,
    executor: str,
    planner: str,
    planner_opts: dict[str, Any],
    episodes_per_task: int,
    families: tuple[str, ...],
    seed: int,
    inject_drops: float,
    retries: int,
    replans: int,
    out: Path | None,
    detector_grounding: bool = False,
    instruction_check: bool = True,
) -> None:
    """`vla eval` on a long-horizon split: plan, execute, judge (`vla.planning.evaluate`)."""
    from vla.planning.evaluate import LongHorizonEvalConfig, evaluate_long_horizon
    from vla.planning.executor import ExecutorConfig
    from vla.planning.plan import PlanError

    ckpt = _checkpoint(checkpoint, executor)
    default_out = (
        Path(ckpt).parent if ckpt else Path("runs")
    ) / f"eval_{split}{'_drops' if inject_drops else ''}"
    try:
        cfg = LongHorizonEvalConfig(
            suite=suite,
            split=split,
            kinds=families,
            episodes_per_kind=episodes_per_task,
            seed=seed,
            planner=planner,
            planner_opts={k: v for k, v in planner_opts.items() if v is not None},
            checkpoint=ckpt,
            executor=ExecutorConfig(retries=retries, replans=replans),
            inject_drops=inject_drops,
            out=str(out or default_out),
            detector_grounding=detector_grounding,
            instruction_check=instruction_check,
        )
        results = evaluate_long_horizon(cfg)
    except (ValueError, KeyError, FileNotFoundError, ImportError, PlanError) as e:
        _fail(e)
    print_long_horizon(results)
    typer.echo(f"results: {Path(cfg.out) / 'results.json'}")


def print_long_horizon(results: dict[str, Any]) -> None:
    """The per-kind table, then one JSON line with the headline numbers."""
    w = max(18, *(len(k) + 2 for k in results["per_kind"]))
    typer.echo(
        f"{'kind':<{w}}{'success':>9}{'steps':>8}{'plan ok':>9}{'replans':>9}{'retries':>9}{'recovered':>11}"
        f"{'plan ms':>9}"
    )
    rows = [*results["per_kind"].items(), ("overall", results)]
    for name, v in rows:
        rec = v["recovered_share"]
        typer.echo(
            f"{name:<{w}}{100 * v['success_rate']:>8.1f}%{100 * v['steps_completed']:>7.0f}%"
            f"{100 * v['plan_accuracy']:>8.0f}%{v['replans']:>9.2f}{v['retries']:>9.2f}"
            f"{'-' if rec != rec else f'{100 * rec:.0f}%':>11}{1e3 * v['planner_latency_s']['median']:>9.0f}"
        )
    keys = (
        "success_rate",
        "steps_completed",
        "plan_accuracy",
        "replans",
        "episodes_with_failure",
        "recovered_share",
        "monitor_agreement",
        "planner_latency_s",
        "faults_injected",
        "split",
        "planner",
    )
    typer.echo(json.dumps({k: results[k] for k in keys} | {"episodes": results["episodes"]}))


def bench_planner(
    split: Annotated[str, Opt(help="long-horizon split")] = "long_horizon_paraphrase",
    planner: Annotated[str, Opt(help="planner backend")] = "smollm2",
    suite: Annotated[str, Opt(help="suite")] = "tabletop",
    episodes_per_kind: Annotated[int, Opt(min=1, help="requests per kind")] = 20,
    seed: Annotated[int, Opt(help="seed of request 0 (as `vla eval`)")] = 100_000,
    threads: Annotated[int, Opt(min=1, help="threads of the offline planner's language model")] = 1,
    cue_weight: Annotated[
        float | None, Opt(min=0.0, help="offline planners: nats per cue word (0: the language model alone)")
    ] = None,
    planner_url: Annotated[str | None, Opt(help="HTTP planners: base URL")] = None,
    planner_model: Annotated[str | None, Opt(help="HTTP planners: model name")] = None,
    out: Annotated[Path | None, Opt(help="JSON file of every request's result")] = None,
) -> None:
    """Planner accuracy (plan == reference plan) and latency per request, no simulator (last line: JSON)."""
    import time

    from vla.envs import get_suite
    from vla.planning.bench import benchmark_planner
    from vla.planning.run import long_horizon_suite

    try:
        lh = long_horizon_suite(get_suite(suite), suite)
    except ValueError as e:
        _fail(e)
    t0 = time.perf_counter()
    opts = planner_options(planner_url, planner_model, None, None, threads) | {"cue_weight": cue_weight}
    plan_with = _planner(planner, lh, opts)
    load_s = time.perf_counter() - t0
    try:
        res = benchmark_planner(lh, plan_with, split=split, episodes_per_kind=episodes_per_kind, seed=seed)
    except ValueError as e:
        _fail(e)
    typer.echo(f"{'kind':<20}{'accuracy':>9}")
    for kind, acc in res["per_kind"].items():
        typer.echo(f"{kind:<20}{100 * acc:>8.0f}%")
    typer.echo(f"{'overall':<20}{100 * res['plan_accuracy']:>8.1f}%  ({res['requests']} requests)")
    for row in res["wrong"][:5]:
        typer.echo(f"  wrong: '{row['instruction']}' -> {row['plan'] or row['error']}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
    lat = {k: round(v, 1) for k, v in res["latency_ms"].items()}
    summary = {k: res[k] for k in ("split", "planner", "requests", "plan_accuracy", "refused")}
    extra = {"latency_ms": lat, "load_s": round(load_s, 1), "threads": threads, "cue_weight": cue_weight}
    typer.echo(json.dumps(summary | extra))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds `run` to the root app and `planner` to `vla bench`."""
    app.command("run")(run_cmd)
    bench.command("planner")(bench_planner)

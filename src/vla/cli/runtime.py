"""`vla` commands of the runtime area: `vla serve`, `vla export`, `vla bench latency`."""

from __future__ import annotations

import json
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class Backend(StrEnum):
    eager = "eager"
    compile = "compile"
    int8 = "int8"
    onnx = "onnx"


class ExportFormat(StrEnum):
    onnx = "onnx"


def _load(checkpoint: Path, config: Any) -> Any:
    """Loads an Engine, turning a missing or invalid checkpoint into a usage error (no traceback)."""
    from vla.runtime.engine import Engine

    try:
        return Engine.from_checkpoint(checkpoint, config)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--checkpoint") from e


def build_server(
    checkpoint: Path,
    *,
    port: int = 8000,
    host: str = "127.0.0.1",
    token: str | None = None,
    estop_token: str | None = None,
    backend: str = "eager",
    threads: int = 1,
    min_confidence: float | None = None,
    mc_dropout: int = 0,
    unsafe_no_filter: bool = False,
    max_batch: int = 8,
    planner: Any = None,
) -> tuple[Any, str]:
    """The PolicyServer `vla serve` runs, and where its confidence comes from ("" when none is needed).

    With `min_confidence` (or `mc_dropout` > 0) the policy must give a confidence: the head's own
    (binned, regression with head.ensemble > 1), a sampling head's (diffusion/flow draw extra samples),
    else MC-dropout (`vla.runtime.uncertainty`); a checkpoint with none of them is refused. A `planner`
    (`vla.planning`) answers the server's `plan` messages.
    """
    from vla.models.policy import Policy
    from vla.runtime.engine import EngineConfig, file_sha256
    from vla.runtime.safety import SafetyConfig
    from vla.runtime.server import PolicyServer, ServeConfig
    from vla.runtime.uncertainty import MCDropout, MCDropoutConfig, confidence_plan

    try:
        policy = Policy.from_pretrained(checkpoint)
        stats_sha = file_sha256(Path(checkpoint) / "stats.json")
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--checkpoint") from e
    source, with_conf = "", False
    if min_confidence is not None or mc_dropout > 0:
        try:
            plan = confidence_plan(policy.config, backend=backend, mc_dropout=mc_dropout > 0)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--min-confidence") from e
        source, with_conf = plan.source, plan.with_confidence
    engine_cfg = EngineConfig(backend=backend, num_threads=threads, with_confidence=with_conf)
    engine = _load_engine(policy, engine_cfg, stats_sha256=stats_sha)
    served: Any = engine
    if source == "mc_dropout":
        served = MCDropout(engine, MCDropoutConfig(samples=mc_dropout or MCDropoutConfig().samples))
    cfg = ServeConfig(
        host=host,
        port=port,
        token=token,
        estop_token=estop_token,
        safety=SafetyConfig(min_confidence=min_confidence),
        unsafe_no_filter=unsafe_no_filter,
        max_batch=max_batch,
    )
    from vla.models.grounding_check import GroundingCheck

    check = GroundingCheck.load(checkpoint)
    if check is not None:
        check.warm()  # the skill check's model loads now, not on the first client's request
    return PolicyServer(served, engine.spec, cfg, planner=planner, instruction_check=check), source


def _load_engine(policy: Any, config: Any, *, stats_sha256: str) -> Any:
    from vla.runtime.engine import Engine

    try:
        return Engine(policy, config, stats_sha256=stats_sha256)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--backend") from e


def serve(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="checkpoint directory")],
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="interface; 0.0.0.0 exposes it to the network")
    ] = "127.0.0.1",
    token: Annotated[
        str | None, typer.Option("--token", help="require 'Authorization: Api-Key <token>'")
    ] = None,
    estop_token: Annotated[
        str | None,
        typer.Option("--estop-token", help="secret that releases a latched e-stop (default: --token)"),
    ] = None,
    backend: Annotated[Backend, typer.Option("--backend")] = Backend.eager,
    threads: Annotated[int, typer.Option("--threads", min=1, help="inference threads")] = 1,
    min_confidence: Annotated[
        float | None,
        typer.Option(
            "--min-confidence",
            help="hold when the policy's confidence is lower (refused for a checkpoint with no confidence)",
        ),
    ] = None,
    mc_dropout: Annotated[
        int,
        typer.Option(
            "--mc-dropout",
            min=0,
            help="MC-dropout passes for the confidence (0: only when the head has no confidence, 8 passes)",
        ),
    ] = 0,
    unsafe_no_filter: Annotated[
        bool, typer.Option("--unsafe-no-filter", help="serve raw model actions, WITHOUT the safety filter")
    ] = False,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="requests merged into one model call when they queue up")
    ] = 8,
    planner: Annotated[
        str,
        typer.Option("--planner", help="also answer `plan` messages with this planner (`vla run --help`)"),
    ] = "",
    planner_suite: Annotated[
        str, typer.Option("--planner-suite", help="suite whose skills it plans")
    ] = "tabletop",
    planner_url: Annotated[str | None, typer.Option("--planner-url", help="HTTP planners: base URL")] = None,
    planner_model: Annotated[str | None, typer.Option("--planner-model", help="HTTP planners: model")] = None,
) -> None:
    """Serves a checkpoint over websockets (openpi wire protocol; openpi-client works unchanged)."""
    if mc_dropout == 1:
        raise typer.BadParameter("MC-dropout needs at least 2 passes", param_hint="--mc-dropout")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plans = None
    if planner:
        from vla.envs import get_suite
        from vla.planning.registry import build_planner

        try:
            skills = get_suite(planner_suite).skills  # type: ignore[attr-defined]
        except AttributeError as e:
            raise typer.BadParameter(
                f"suite '{planner_suite}' declares no skills", param_hint="--planner-suite"
            ) from e
        plans = build_planner(planner, skills, url=planner_url, model=planner_model)
    server, source = build_server(
        checkpoint,
        port=port,
        host=host,
        token=token,
        estop_token=estop_token,
        backend=backend.value,
        threads=threads,
        min_confidence=min_confidence,
        mc_dropout=mc_dropout,
        unsafe_no_filter=unsafe_no_filter,
        max_batch=max_batch,
        planner=plans,
    )
    meta = server.metadata()
    conf = f" confidence={source}" if source else ""
    typer.echo(
        f"serving {checkpoint} ({meta['policy_name']}, backend {backend.value}) on ws://{host}:{port} "
        f"action_shape={meta['action_shape']} safety_filter={'ON' if not unsafe_no_filter else 'OFF (unsafe)'}"
        f"{conf}{f' planner={planner}' if planner else ''}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("stopped")


def export(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="checkpoint directory")],
    out: Annotated[Path, typer.Option("--out", help="output file, e.g. model.onnx")],
    format: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.onnx,
    check: Annotated[bool, typer.Option("--check/--no-check", help="compare with PyTorch")] = True,
) -> None:
    """Exports a checkpoint to ONNX (robot units in and out; instruction embedding as an input)."""
    import numpy as np

    from vla.runtime.bench import example_request
    from vla.runtime.engine import Engine, EngineConfig
    from vla.runtime.onnx_export import ATOL, export_onnx
    from vla.types import Observation

    engine = _load(checkpoint, EngineConfig())
    try:
        export_onnx(engine.policy, out)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--checkpoint") from e
    typer.echo(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if check:
        req = example_request(engine)
        obs = Observation(
            images={c: req[f"images/{c}"] for c in engine.spec.cameras},
            state=req["state"],
            instruction=req["prompt"],
        )
        ref = engine.predict(obs).actions
        got = Engine(engine.policy, EngineConfig(backend="onnx", onnx_path=str(out))).predict(obs).actions
        err = float(np.abs(got - ref).max())
        status = "OK" if err <= ATOL else "MISMATCH"
        typer.echo(f"onnxruntime vs PyTorch: max |diff| = {err:.2e} (tolerance {ATOL:.0e}) {status}")
        if err > ATOL:
            raise typer.Exit(1)


def latency(
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="checkpoint dir (default: untrained default preset)")
    ] = None,
    backends: Annotated[str, typer.Option("--backends", help="comma-separated")] = "eager,compile,int8,onnx",
    calls: Annotated[int, typer.Option("--calls", min=1)] = 200,
    threads: Annotated[int, typer.Option("--threads", min=1)] = 1,
    server_calls: Annotated[int, typer.Option("--server-calls", min=0)] = 200,
    server_backend: Annotated[Backend, typer.Option("--server-backend")] = Backend.eager,
    load_clients: Annotated[int, typer.Option("--load-clients", min=0)] = 16,
    load_seconds: Annotated[float, typer.Option("--load-seconds", min=0.1)] = 3.0,
) -> None:
    """Per-call latency of each engine backend and over the loopback server; ends with a JSON line."""
    from vla.runtime.bench import LatencyConfig, format_table, run_latency

    cfg = LatencyConfig(
        backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
        calls=calls,
        num_threads=threads,
        server_calls=server_calls,
        server_backend=server_backend.value,
        load_clients=load_clients,
        load_seconds=load_seconds,
    )
    if checkpoint is None:
        typer.echo("no --checkpoint: timing an UNTRAINED default-preset policy built in a temp dir")
    elif not (checkpoint / "config.json").is_file():
        from vla.checkpoint_layout import not_a_checkpoint

        raise typer.BadParameter(not_a_checkpoint(checkpoint), param_hint="--checkpoint")
    rows, summary = run_latency(checkpoint, cfg)
    typer.echo(format_table(rows))
    typer.echo(json.dumps(summary, sort_keys=True))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Adds this area's commands to the root app and the `vla bench` group."""
    app.command("serve")(serve)
    app.command("export")(export)
    bench.command("latency")(latency)

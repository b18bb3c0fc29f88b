"""Command-line papercuts: clean unknown-name errors, quiet checkpoint loading, plain progress lines
in logs, and no environment changes at import time."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vla.cli.main import configure_environment
from vla.cli.progress import Progress
from vla.registry import UnknownNameError, lookup

SRC = Path(__file__).resolve().parents[2] / "src"
ENV_VARS = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_WAIT_POLICY")


def _python(code: str, *, clean: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not (clean and (k in ENV_VARS or k == "GOMP_SPINCOUNT"))}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_unknown_name_message_has_no_stray_quotes():
    with pytest.raises(KeyError) as e:  # still a KeyError for callers that catch those
        lookup({"default": 1, "act": 2}, "defualt", kind="preset")
    assert isinstance(e.value, UnknownNameError)
    assert str(e.value) == "unknown preset 'defualt'. Did you mean 'default'? Known: act, default"


@pytest.mark.parametrize(
    "argv",
    [["models", "show", "defualt"], ["env", "show", "tabletopp", "--out", "/dev/null"]],
)
def test_cli_prints_a_clean_unknown_name_error(argv):
    code = f"import sys; sys.argv = ['vla', *{argv!r}]; from vla.cli.main import main; main()"
    res = _python(code)
    assert res.returncode == 2, res.stderr
    assert "Did you mean" in res.stderr
    assert '"unknown' not in res.stderr and "Traceback" not in res.stderr


def test_loading_a_checkpoint_prints_no_weights_progress_bar():
    code = (
        "from vla.models.language import _load_pretrained, minilm_path\n"
        "_load_pretrained(str(minilm_path()))\n"
    )
    res = _python(code, clean=False)
    assert res.returncode == 0, res.stderr
    assert "Loading weights" not in res.stderr


def test_importing_the_cli_and_the_suite_leaves_the_environment_alone():
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import vla.cli.main, vla.envs, vla.envs.tabletop\n"
        "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
        "assert not changed, changed\n"
        "assert 'torch' not in sys.modules and 'mujoco' not in sys.modules\n"
        "from vla.envs import get_suite\n"
        "get_suite('tabletop')  # building the suite chooses headless rendering before MuJoCo loads\n"
        "assert os.environ['MUJOCO_GL'] == 'egl', os.environ.get('MUJOCO_GL')\n"
    )
    res = _python(code)
    assert res.returncode == 0, res.stderr


def test_main_sets_the_environment_before_the_command_runs():
    code = (
        "import os, sys\n"
        "sys.argv = ['vla', 'models', 'show', 'default']\n"
        "from vla.cli.main import main\n"
        "assert 'OMP_WAIT_POLICY' not in os.environ\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'], os.environ['MUJOCO_GL'])\n"
    )
    res = _python(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "ACTIVE 300000 egl"


@pytest.mark.parametrize(
    ("argv", "given", "policy"),
    [
        (["train", "d.h5"], {}, "ACTIVE"),
        (["bench", "model"], {}, "ACTIVE"),
        (["bench", "latency"], {}, "PASSIVE"),
        (["serve", "--checkpoint", "x"], {}, "PASSIVE"),
        (["train", "d.h5"], {"LOCAL_RANK": "0"}, "PASSIVE"),  # a DDP rank shares the machine
        (["train", "d.h5"], {"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE"),  # the user's choice wins
    ],
)
def test_wait_policy_per_command(argv, given, policy):
    env = dict(given)
    configure_environment(argv, env)
    assert env["OMP_WAIT_POLICY"] == policy
    assert ("GOMP_SPINCOUNT" in env) == (policy == "ACTIVE" and "OMP_WAIT_POLICY" not in given)
    assert env["MUJOCO_GL"] == "egl" and env["HF_HUB_OFFLINE"] == "1"


def test_progress_prints_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress(1000, desc="grounding tabletop", unit="view", stream=out) as bar:
        for _ in range(1000):
            bar.update(1)
        bar.set_postfix(failed=0)
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 20
    assert lines[0].startswith("grounding tabletop: 50/1000 view (5%)")
    assert lines[-1].startswith("grounding tabletop: 1000/1000 view (100%)")


def test_progress_final_line_and_uneven_updates():
    out = io.StringIO()
    bar = Progress(7, desc="collect tabletop", unit="ep", stream=out, lines=2)
    bar.update(3)
    bar.set_postfix(failed=1)
    bar.update(3)
    bar.close()
    lines = out.getvalue().splitlines()
    assert [ln.split(" ep")[0] for ln in lines] == ["collect tabletop: 6/7"]  # 4 per line, then close
    bar = Progress(7, desc="collect tabletop", unit="ep", stream=(out := io.StringIO()), lines=2)
    bar.update(5)
    bar.update(2)
    bar.close()  # 7 is short of the next line at 8: close prints it
    assert [ln.split(" ep")[0] for ln in out.getvalue().splitlines()] == [
        "collect tabletop: 5/7",
        "collect tabletop: 7/7",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_live_bar_on_a_terminal():
    out = _Terminal()
    with Progress(10, desc="collect", unit="ep", stream=out) as bar:
        bar.update(10)
    assert "\r" in out.getvalue() and "10/10" in out.getvalue()


def test_every_progress_bar_goes_through_the_helper():
    uses = sorted(
        str(p.relative_to(SRC))
        for p in (SRC / "vla").rglob("*.py")
        if "tqdm" in p.read_text() and p.name != "progress.py"
    )
    assert uses == ["vla/train.py"]  # train.py draws its bar only on a terminal itself

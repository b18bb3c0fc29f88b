"""Crash safety: a recording process killed with SIGKILL loses at most the episode in progress."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vla.data.journal import journal_path
from vla.data.reader import EpisodeDataset

# The child records 3-step episodes whose state encodes (episode, step); it can kill itself after
# `kill_after` low-level writes of the file (i.e. in the middle of an HDF5 append).
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    import numpy as np
    from vla.data.episode import Step
    from vla.data.journal import JournaledFile
    from vla.data.recorder import Recorder

    path, episodes, kill_ep, kill_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rec = Recorder(path, suite="crash-test")
    writes = [0]
    original_write = JournaledFile.write

    def counting_write(self, data):
        writes[0] += 1
        if writes[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return original_write(self, data)

    for e in range(episodes):
        rng = np.random.default_rng(e)
        rec.start(f"task {e}", {"family": "f", "seed": e})
        for t in range(3):
            rec.add(Step(images={"scene": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)},
                         state=np.full(4, e * 10 + t, np.float32), action=np.full(2, t, np.float32),
                         timestamp=t * 0.1))
        if e == kill_ep:
            if kill_after < 0:
                print(f"recording {e}", flush=True)
                time.sleep(60)  # the parent kills us here, mid-episode
            JournaledFile.write = counting_write
        rec.end(success=True)
        print(f"committed {e}", flush=True)
    """
)


def run_child(path: Path, *, episodes: int, kill_ep: int, kill_after: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(episodes), str(kill_ep), str(kill_after)],
        stdout=subprocess.PIPE,
        text=True,
    )


def check_intact(path: Path, n: int) -> None:
    with EpisodeDataset(path) as ds:
        assert len(ds) == n
        for e in range(n):
            ep = ds.episode(e)
            rng = np.random.default_rng(e)
            frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
            np.testing.assert_array_equal(ep.images["scene"], np.stack(frames))
            np.testing.assert_array_equal(ep.state[:, 0], [e * 10, e * 10 + 1, e * 10 + 2])
            assert ep.instruction == f"task {e}"
            assert ep.meta["seed"] == e


def test_data_sigkill_mid_episode_keeps_earlier_episodes(tmp_path: Path) -> None:
    path = tmp_path / "crash.h5"
    child = run_child(path, episodes=5, kill_ep=3, kill_after=-1)
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if line.startswith("recording 3"):
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert lines == ["committed 0", "committed 1", "committed 2", "recording 3"]
    check_intact(path, 3)


@pytest.mark.parametrize("kill_after", [1, 9, 12, 20, 33])
def test_data_sigkill_inside_hdf5_append_rolls_back(tmp_path: Path, kill_after: int) -> None:
    """Killed in the middle of writing episode 2 to the file: episodes 0 and 1 are intact, and the
    file accepts new appends after the rollback."""
    path = tmp_path / "crash.h5"
    child = run_child(path, episodes=3, kill_ep=2, kill_after=kill_after)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, out
    assert out.split("\n")[:2] == ["committed 0", "committed 1"]
    assert journal_path(path).exists()  # the interrupted append left its journal behind
    check_intact(path, 2)  # opening rolls back
    assert not journal_path(path).exists()
    child = run_child(path, episodes=3, kill_ep=-5, kill_after=0)
    child.communicate(timeout=60)
    assert child.returncode == 0
    with EpisodeDataset(path) as ds:
        assert len(ds) == 5
        assert ds.instructions == ["task 0", "task 1", "task 0", "task 1", "task 2"]


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from vla.data.episode import Episode
    from vla.data.writer import DatasetWriter

    path, n = sys.argv[1], int(sys.argv[2])
    w = DatasetWriter(path, suite="concurrent")
    for e in range(n):
        rng = np.random.default_rng(e)
        w.append(Episode(images={"scene": rng.integers(0, 256, (20, 24, 32, 3), dtype=np.uint8)},
                         state=np.full((20, 4), e, np.float32), actions=np.zeros((20, 2), np.float32),
                         timestamps=np.arange(20) / 10.0, instruction=f"task {e}", success=True))
    """
)


def test_data_readers_see_committed_episodes_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "live.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "40"])
    seen = []
    try:
        while writer.poll() is None or not seen or seen[-1] < 40:
            if not path.exists():
                continue
            with EpisodeDataset(path) as ds:
                n = len(ds)
                for e in range(n):  # every listed episode reads back whole and correct
                    ep = ds.episode(e)
                    assert ep.state[0, 0] == e
                    expected = np.random.default_rng(e).integers(0, 256, (20, 24, 32, 3), dtype=np.uint8)
                    np.testing.assert_array_equal(ep.images["scene"], expected)
            seen.append(n)
            if writer.poll() is not None and n == 40:
                break
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0
    assert seen == sorted(seen)
    assert seen[-1] == 40
    assert len(set(seen)) > 2, f"the reader never overlapped the writer: {seen}"


def test_data_writer_times_out_on_a_held_lock(tmp_path: Path) -> None:
    import fcntl

    from vla.data.journal import file_lock

    path = tmp_path / "locked.h5"
    path.write_bytes(b"x")
    holder = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_SH)  # like a program that keeps the file open with HDF5 locking
        with file_lock(path, exclusive=False, timeout=0.1):
            pass  # readers share
        with (
            pytest.raises(TimeoutError, match=r"locked\.h5: another process has held the file locked"),
            file_lock(path, exclusive=True, timeout=0.1),
        ):
            pass
    finally:
        os.close(holder)
    with file_lock(path, exclusive=True, timeout=0.1):
        pass

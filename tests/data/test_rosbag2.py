"""rosbag2 import/export: a dataset round-trips through a bag (mcap and sqlite3) with its data intact, and
a foreign bag (other topic names, sensors at their own rates, jittered commands) imports aligned to
the control rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vla.cli.main import app
from vla.data.episode import Episode
from vla.data.reader import EpisodeDataset
from vla.data.rosbag2_export import export_rosbag2
from vla.data.rosbag2_format import TopicMap
from vla.data.rosbag2_import import import_rosbag2
from vla.data.writer import DatasetWriter
from vla.envs.tabletop.embodiment import make_embodiment
from vla.runtime.ros2 import codecs, messages
from vla.runtime.ros2.codecs import CommandCodec, StateLayout

HW = (12, 16)
JOINTS = tuple(f"joint{i}" for i in range(1, 8))


def _tabletop_dataset(path: Path, rng: np.random.Generator, lengths=(5, 3)) -> Path:
    emb = make_embodiment(HW)
    w = DatasetWriter(path, embodiment=emb, suite="tabletop", env_args={"image_size": list(HW)})
    for i, n in enumerate(lengths):
        state = rng.normal(size=(n, 22)).astype(np.float32)
        state[:, 14] = np.abs(state[:, 14])  # finger opening
        w.append(
            Episode(
                images={c: rng.integers(0, 256, (n, *HW, 3), dtype=np.uint8) for c in ("scene", "wrist")},
                state=state,
                actions=rng.normal(size=(n, 7)).astype(np.float32),
                timestamps=np.arange(n, dtype=np.float64) / 10.0,
                instruction=f"touch the block number {i}",
                success=i == 0,
                meta={"family": "touch", "seed": 100 + i},
            )
        )
    return path


def _assert_same(a_path: Path, b_path: Path) -> None:
    with EpisodeDataset(a_path) as a, EpisodeDataset(b_path) as b:
        assert len(a) == len(b)
        assert a.embodiment == b.embodiment and a.suite == b.suite and a.env_args == b.env_args
        assert b.stats is not None
        for i in range(len(a)):
            ea, eb = a.episode(i), b.episode(i)
            assert (ea.instruction, ea.success, ea.meta) == (eb.instruction, eb.success, eb.meta)
            for cam in ea.images:
                np.testing.assert_array_equal(ea.images[cam], eb.images[cam])
            np.testing.assert_array_equal(ea.state, eb.state)
            np.testing.assert_array_equal(ea.actions, eb.actions)
            np.testing.assert_allclose(ea.timestamps, eb.timestamps, atol=1e-9)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_round_trip_keeps_the_data(tmp_path: Path, storage: str) -> None:
    src = _tabletop_dataset(tmp_path / "src.h5", np.random.default_rng(0))
    bag = export_rosbag2(src, tmp_path / "bag", storage=storage)
    assert (bag / "metadata.yaml").is_file()
    assert any(p.suffix == (".mcap" if storage == "mcap" else ".db3") for p in bag.iterdir())
    back = import_rosbag2(bag, tmp_path / "back.h5")
    _assert_same(src, back)
    with pytest.raises(FileExistsError):
        export_rosbag2(src, bag)


def test_round_trip_of_an_embodiment_without_ros_state_fields(tmp_path: Path, small_dataset) -> None:
    src, _ = small_dataset  # state fields "joints", "ee_pos": no ROS message holds them
    bag = export_rosbag2(src, tmp_path / "bag")  # the whole state goes out on /state
    from rosbags.rosbag2 import Reader

    with Reader(bag) as r:
        assert {c.topic for c in r.connections} >= {"/state", "/command/ee_delta", "/cameras/scene/image_raw"}
    _assert_same(src, import_rosbag2(bag, tmp_path / "back.h5", topics=TopicMap(state="/state")))


def test_cli_export_import_with_a_topic_map(tmp_path: Path) -> None:
    src = _tabletop_dataset(tmp_path / "src.h5", np.random.default_rng(1))
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "data",
            "export",
            str(src),
            "--format",
            "rosbag2",
            "--out",
            str(tmp_path / "bag"),
            "--storage",
            "sqlite3",
        ],
    )
    assert res.exit_code == 0, res.output
    tm = tmp_path / "topics.yaml"
    tm.write_text(
        "control_hz: 10\ncameras:\n  scene: /cameras/scene/image_raw\n  wrist: /cameras/wrist/image_raw\n"
    )
    res = runner.invoke(
        app,
        [
            "data",
            "import",
            str(tmp_path / "bag"),
            "--format",
            "rosbag2",
            "--out",
            str(tmp_path / "b.h5"),
            "--map",
            str(tm),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "2 episodes, 8 steps" in res.output
    _assert_same(src, tmp_path / "b.h5")
    tm.write_text("cameras: {scene: /nope}\n")
    res = runner.invoke(
        app,
        [
            "data",
            "import",
            str(tmp_path / "bag"),
            "--format",
            "rosbag2",
            "--out",
            str(tmp_path / "c.h5"),
            "--map",
            str(tm),
        ],
    )
    text = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code != 0 and "camera scene topic '/nope' is not in the bag" in text


def _foreign_bag(path: Path, *, bad_image_at: int | None = None) -> tuple[Path, list[tuple[int, int]]]:
    """A bag as a robot would record it: cameras at 30 Hz, joints at 100 Hz, 10 Hz commands with jitter, a
    burst, and a gap. Returns the bag and, per expected step, (camera frame index, command index)."""
    from rosbags.rosbag2 import Writer

    emb = make_embodiment(HW)
    layout = StateLayout(emb, JOINTS)
    codec = CommandCodec.for_embodiment(emb, space=None, joint_names=JOINTS)
    ts = messages.typestore()
    rng = np.random.default_rng(3)
    t0 = 10**18
    jitter = rng.uniform(-0.015, 0.015, 30)
    cmd_times = [t0 + round((0.2 + k / 10 + jitter[k]) * 1e9) for k in range(30) if not 12 <= k <= 15]  # gap
    cmd_times.insert(5, cmd_times[4] + 5_000_000)  # a burst: two commands 5 ms apart
    events: list[tuple[int, str, str, dict]] = [
        (t0, "/robot/task", "std_msgs/msg/String", {"data": "wipe the table"})
    ]
    for f in range(int(3.5 * 30)):
        t = t0 + round(f / 30 * 1e9)
        value = f % 256
        size = (10, 16) if f == bad_image_at else HW
        for cam, topic in (("scene", "/rs/color"), ("wrist", "/wrist/raw")):
            img = np.full((*size, 3), value, np.uint8)
            events.append(
                (t, topic, "sensor_msgs/msg/Image", codecs.array_to_image(img, stamp_ns=t, frame_id=cam))
            )
    for j in range(350):
        t = t0 + j * 10_000_000 + 1
        state = np.full(22, j, np.float32)
        events.append(
            (
                t,
                "/arm/joint_states",
                "sensor_msgs/msg/JointState",
                layout.joint_state_fields(state, stamp_ns=t),
            )
        )
        events.append(
            (
                t,
                "/arm/tcp",
                "geometry_msgs/msg/PoseStamped",
                layout.pose_fields(state, stamp_ns=t, frame_id="base"),
            )
        )
    for i, t in enumerate(cmd_times):
        a = np.zeros(7, np.float32)
        a[0] = i
        events.append((t, "/arm/delta", codec.msgtype, codec.encode(a, stamp_ns=t)))
    end = cmd_times[-1] + 50_000_000
    events.append((end, "/robot/done", "std_msgs/msg/Bool", {"data": True}))
    events.sort(key=lambda e: e[0])
    with Writer(path, version=9) as w:
        conns: dict[str, object] = {}
        for t, topic, msgtype, fields in events:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=ts)
            w.write(conns[topic], t, messages.encode(msgtype, messages.build(msgtype, fields)))
    # Expected: grid points 0.5 periods after t0' + k/10 (t0' = first command); each takes the newest
    # command; the burst's first command is thinned away, the gap adds no steps.
    first = cmd_times[0]
    expected, last = [], -1
    k = 0
    while first + k * 100_000_000 <= cmd_times[-1]:
        j = max(i for i, t in enumerate(cmd_times) if t <= first + (k + 0.5) * 100_000_000)
        if j > last:
            last = j
            frame = max(f for f in range(int(3.5 * 30)) if t0 + round(f / 30 * 1e9) <= cmd_times[j])
            expected.append((frame, j))
        k += 1
    return path, expected


def test_foreign_bag_is_aligned_to_the_control_rate(tmp_path: Path) -> None:
    bag, expected = _foreign_bag(tmp_path / "robot_bag")
    tm = TopicMap(
        cameras={"scene": "/rs/color", "wrist": "/wrist/raw"},
        joint_states="/arm/joint_states",
        ee_pose="/arm/tcp",
        command="/arm/delta",
        instruction="/robot/task",
        task_success="/robot/done",
        embodiment="tabletop",
        control_hz=10,
    )
    out = import_rosbag2(bag, tmp_path / "robot.h5", topics=tm)
    with EpisodeDataset(out) as ds:
        assert len(ds) == 1 and ds.embodiment is not None and ds.embodiment.name == "panda_tabletop"
        ep = ds.episode(0)
    assert ep.instruction == "wipe the table" and ep.success
    assert len(ep) == len(expected) < 30  # the gap and the burst removed steps
    np.testing.assert_array_equal(ep.actions[:, 0], [j for _, j in expected])
    np.testing.assert_array_equal(ep.images["scene"][:, 0, 0, 0], [f % 256 for f, _ in expected])
    assert 4 not in ep.actions[:, 0]  # the burst's first command
    # The joint state is the newest one at or before the command (published every 10 ms, value = index).
    assert np.all(np.diff(ep.state[:, 0]) > 0)
    np.testing.assert_allclose(ep.timestamps[:3], [0.0, 0.1, 0.2])


def test_bad_image_in_a_bag_names_topic_and_time(tmp_path: Path) -> None:
    bag, expected = _foreign_bag(tmp_path / "bad_bag", bad_image_at=12)
    tm = TopicMap(
        cameras={"scene": "/rs/color", "wrist": "/wrist/raw"},
        joint_states="/arm/joint_states",
        ee_pose="/arm/tcp",
        command="/arm/delta",
        instruction="/robot/task",
        embodiment="tabletop",
    )
    assert 12 in [f for f, _ in expected]
    with pytest.raises(ValueError, match=r"/rs/color: image is 10x16 .* expects 12x16"):
        import_rosbag2(bag, tmp_path / "bad.h5", topics=tm)
    assert not (tmp_path / "bad.h5").exists() or EpisodeDataset(tmp_path / "bad.h5").__len__() == 0

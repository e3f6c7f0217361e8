"""advantage.report.video: GIFs of trained agents, JAX-native and Gymnasium."""

from __future__ import annotations

import importlib.util
import json
import shutil

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from helpers import train_run

from advantage.algos import ppo
from advantage.cli import main
from advantage.envs import Environment
from advantage.envs.classic.cartpole import CartPole
from advantage.report import video

SMALL = dict(n_envs=4, n_steps=32, n_epochs=2, n_minibatches=2)
HAS_PYGAME = importlib.util.find_spec("pygame") is not None
HAS_FFMPEG = importlib.util.find_spec("imageio_ffmpeg") is not None


class PixelEnv(gymnasium.Env):
    """A dot on a line, drawn by a NumPy ``render()`` (no pygame): a Gymnasium env that can film.
    Same spaces as ``envs_for_tests.CountEnv`` (Box(2,), Discrete(2)), which cannot."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None, length: int = 20):
        self.render_mode, self.length = render_mode, length
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def _obs(self):
        return np.array([self.x, self.t / self.length], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(-0.5, 0.5)), 0
        return self._obs(), {}

    def step(self, action):
        self.x = float(np.clip(self.x + (0.1 if int(action) == 1 else -0.1), -1.0, 1.0))
        self.t += 1
        return self._obs(), -abs(self.x), False, self.t >= self.length, {}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        img = np.full((48, 64, 3), 255, np.uint8)
        col = int(round((self.x + 1.0) / 2.0 * 63))
        img[20:28, max(col - 3, 0):col + 4] = (200, 30, 30)
        img[44:, : int(64 * self.t / self.length)] = 0  # a progress bar: every frame differs
        return img


def _gif_frames(path):
    import imageio.v3 as iio

    return iio.imread(path, index=None)


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    return train_run(tmp_path_factory.mktemp("jax"), "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(0, 1),
                     total_steps=1024, eval_episodes=3)


def test_gif_of_a_jax_cartpole_run(jax_run, tmp_path):
    summary, run_dir = jax_run
    r = video.rollout(run_dir, episodes=2, seed_index=1)
    evaluation = json.loads((run_dir / "eval" / "final.json").read_text())[1]
    # video episode i is evaluation episode i of that seed
    assert r.returns == pytest.approx(evaluation["returns"][:2])
    assert r.lengths == evaluation["lengths"][:2]
    assert len(r.frames) == sum(r.lengths) + 2 and r.fps == 50 and r.seed == 1
    path = video.write_video(r.frames, tmp_path / "agent.gif", r.fps)
    frames = _gif_frames(path)
    assert frames.ndim == 4 and frames.shape[0] > 1 and frames.shape[1:] == (400, 600, 3)
    # the exact palette keeps the rendered colors; Pillow merges identical consecutive frames
    np.testing.assert_array_equal(frames[0], r.frames[0])
    assert np.abs(frames[0].astype(int) - frames[-1]).sum() > 0
    assert frames.std() > 0


def test_eval_video_command(jax_run, tmp_path, capsys):
    _, run_dir = jax_run
    assert main(["eval", str(run_dir), "--video"]) == 0
    out = capsys.readouterr().out
    default = run_dir / "videos" / "agent.gif"
    assert str(default) in out and "return" in out
    assert _gif_frames(default).shape[0] > 1

    path = tmp_path / "short.gif"
    assert main(["eval", "--video", str(path), str(run_dir), "--max-frames", "5", "--video-seed-index", "1"]) == 0
    assert "cut at --max-frames 5" in capsys.readouterr().out
    assert _gif_frames(path).shape[0] <= 5

    assert main(["eval", str(run_dir), "--video", str(tmp_path / "agent.avi")]) == 2
    assert ".gif or .mp4" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--video", "--video-seed-index", "7"]) == 2
    assert "out of range" in capsys.readouterr().err
    mp4 = tmp_path / "agent.mp4"
    if HAS_FFMPEG:
        assert main(["eval", str(run_dir), "--video", str(mp4)]) == 0 and mp4.stat().st_size > 0
    else:
        assert main(["eval", str(run_dir), "--video", str(mp4)]) == 2
        assert 'pip install "imageio[ffmpeg]"' in capsys.readouterr().err and not mp4.exists()


def test_gymnasium_cartpole_renders_or_says_what_to_install(tmp_path):
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=256, eval_episodes=1,
                           backend="gymnasium")
    if HAS_PYGAME:
        path = video.record(run_dir, tmp_path / "gym.gif")
        frames = _gif_frames(path)
        assert frames.shape[0] > 1 and frames.shape[1:] == (400, 600, 3) and frames.std() > 0
    else:
        with pytest.raises(video.VideoError, match=r"pygame.*gymnasium\[classic-control\]"):
            video.record(run_dir, tmp_path / "gym.gif")
        assert not (tmp_path / "gym.gif").exists()


def test_gymnasium_env_with_its_own_renderer(tmp_path):
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "test_video:PixelEnv", total_steps=256,
                           eval_episodes=2)
    r = video.rollout(run_dir, episodes=2)
    evaluation = json.loads((run_dir / "eval" / "final.json").read_text())[0]
    assert r.backend == "gymnasium" and r.fps == 10
    assert r.lengths == [20, 20] and len(r.frames) == 42
    assert r.returns == pytest.approx(evaluation["returns"], rel=1e-5)
    frames = _gif_frames(video.write_video(r.frames, tmp_path / "pixel.gif", r.fps))
    assert frames.shape[1:] == (48, 64, 3) and frames.shape[0] > 1
    assert len({f.tobytes() for f in frames}) == frames.shape[0]  # all frames differ

    # an env whose constructor has no render_mode (same spaces, so the agent loads)
    other = tmp_path / "count-env-run"
    shutil.copytree(run_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["run"]["env"] = "envs_for_tests:CountEnv"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(video.VideoError, match="render_mode"):
        video.record(other, tmp_path / "count.gif")


class CartPoleWithoutRenderer(CartPole):
    """CartPole's dynamics and spaces without its renderer (a ``module:Class`` JAX env)."""

    max_episode_steps = 500
    render = Environment.render


def test_a_jax_env_without_a_renderer_is_refused(jax_run, tmp_path):
    _, run_dir = jax_run
    other = tmp_path / "no-renderer-run"
    shutil.copytree(run_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["run"]["env"] = "test_video:CartPoleWithoutRenderer"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(video.VideoError, match="has no renderer"):
        video.record(other, tmp_path / "none.gif")


@pytest.mark.parametrize("n_colors", [5, 300])  # an exact palette, and past 256 colours (kept as RGB)
def test_compact_frames_give_back_the_rgb_frames_and_the_same_gif(tmp_path, n_colors):
    rng = np.random.default_rng(0)
    colors = rng.integers(0, 256, (n_colors, 3), dtype=np.uint8)
    frames = [colors[rng.integers(0, n_colors, (30, 40))] for _ in range(4)]
    compact = video._PaletteGif()
    compact.extend(frames[:2])
    compact.append(frames[2])
    compact.append(frames[3])
    assert len(compact) == 4 and compact.exact == (n_colors <= 256)
    for got, want in zip(compact, frames):
        np.testing.assert_array_equal(got, want)
    a = video.write_video(frames, tmp_path / "a.gif")
    b = video.write_video(compact, tmp_path / "b.gif")
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("n_colors", [5, 300])
def test_a_released_gif_is_the_same_file_and_lets_go_of_its_frames(tmp_path, n_colors):
    """``write_video(..., release=True)`` (what ``record`` does) hands the frames to Pillow one by one, so
    that the video is not held twice: the same bytes, and nothing left in the frame list afterwards."""
    rng = np.random.default_rng(1)
    colors = rng.integers(0, 256, (n_colors, 3), dtype=np.uint8)
    frames = [colors[rng.integers(0, n_colors, (30, 40))] for _ in range(5)]
    kept, released = video._PaletteGif(), video._PaletteGif()
    kept.extend(frames)
    released.extend(frames)
    a = video.write_video(kept, tmp_path / "kept.gif")
    b = video.write_video(released, tmp_path / "released.gif", release=True)
    assert a.read_bytes() == b.read_bytes()
    assert len(kept) == 5 and len(released) == 0

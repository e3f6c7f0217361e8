"""Videos of a trained agent: ``advantage eval RUN_DIR --video [PATH]``.

The agent of one training seed plays evaluation episodes exactly as in the run's
evaluation (episode ``i`` starts from evaluation seed ``1_000_000_000 + i``; the policy's
mode by default), and every state is drawn:

* JAX-native envs with their own jittable renderer, ``env.render(state, params) -> uint8
  [H, W, 3]`` (no display, no pygame): the episode is one compiled ``lax.scan``, the frames
  are rendered in batches with ``jit(vmap(render))``;
* Gymnasium envs through ``render_mode="rgb_array"`` (many need pygame or MuJoCo for that),
  with the same observation and action conversions as the training bridge.

Frames are written to a GIF (Pillow, with one exact palette: fast for rendered envs; the
default) or an MP4 (imageio's ffmpeg plugin: ``pip install "imageio[ffmpeg]"``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advantage.errors import VideoError  # defined there; importable from here as before

#: At most this many frames are rendered in total (all frames are held in memory until written).
DEFAULT_MAX_FRAMES = 1000
#: JAX states rendered per compiled call.
RENDER_BATCH = 32
VIDEO_SUFFIXES = (".gif", ".mp4")
DEFAULT_FPS = 30


@dataclass
class Rollout:
    """What :func:`rollout` recorded: ``frames`` (uint8 ``[H, W, 3]`` each; with ``compact=True`` a frame list
    kept as palette indices, which iterates as RGB frames), and per episode its ``returns`` and ``lengths``
    (raw, undiscounted; cut short where ``max_frames`` ran out)."""

    frames: Any = field(default_factory=list)
    returns: list = field(default_factory=list)
    lengths: list = field(default_factory=list)
    fps: int = DEFAULT_FPS
    cut_by_max_frames: bool = False
    env: str = ""
    backend: str = ""
    seed: int | None = None


# --------------------------------------------------------------------------- writing


def check_path(out_path) -> None:
    """Raise :class:`VideoError` unless a video can be written to ``out_path`` (.gif, or .mp4 with ffmpeg)."""
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise VideoError(f"cannot write a video to {out_path}: give a path ending in .gif or .mp4")
    if out_path.exists() and out_path.is_dir():
        raise VideoError(f"{out_path} is a folder; give a file path ending in .gif or .mp4")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise VideoError(
                f"writing {out_path} needs imageio's ffmpeg plugin, which is not installed: "
                'pip install "imageio[ffmpeg]" (or write a GIF: give a path ending in .gif)'
            ) from None


def _check_frame(frame, where: str) -> np.ndarray:
    a = np.asarray(frame)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise VideoError(f"{where} returned an image of shape {a.shape}; a video needs [height, width, 3] RGB frames")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])


class _PaletteGif:
    """Frames to a GIF through Pillow with one palette for the whole video.

    Pillow converts RGB frames to a 256-color palette one by one, slowly (about 30 ms for a
    600x400 frame). Rendered envs use few colors: they are mapped exactly through a lookup
    table of 2^24 entries filled as new colors appear. Past 256 colors (an anti-aliased
    renderer), a palette is taken from the frames seen so far and every frame is mapped to
    its nearest colors.
    """

    def __init__(self):
        self.lut = np.full(1 << 24, -1, np.int16)  # packed RGB -> palette index
        self.colors: list[int] = []
        self.frames: list[np.ndarray] = []  # palette indices, or RGB once the palette is full
        self.exact = True

    def add(self, frame: np.ndarray) -> None:
        if not self.exact:
            self.frames.append(frame)
            return
        key = (frame[..., 0].astype(np.int32) << 16) | (frame[..., 1].astype(np.int32) << 8) | frame[..., 2]
        idx = self.lut[key]
        if (idx < 0).any():
            new = np.unique(key[idx < 0])
            if len(self.colors) + len(new) > 256:
                self._give_up_exact()
                self.frames.append(frame)
                return
            self.lut[new] = np.arange(len(self.colors), len(self.colors) + len(new))
            self.colors.extend(int(c) for c in new)
            idx = self.lut[key]
        self.frames.append(idx.astype(np.uint8))

    # A frame list: a rollout can record into one directly, so that a 600x400 video holds one byte a pixel
    # (palette indices) instead of three (501 CartPole frames: 120 MB instead of 360 MB).
    append = add

    def extend(self, frames) -> None:
        for frame in frames:
            self.add(frame)

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self):
        """The frames as RGB ``[H, W, 3]`` (for an MP4 writer, or a user's own use)."""
        palette = self._palette() if self.exact else None
        return (palette[f] if palette is not None else f for f in self.frames)

    def _palette(self) -> np.ndarray:
        c = np.asarray(self.colors, np.int64)
        return np.stack([(c >> 16) & 255, (c >> 8) & 255, c & 255], -1).astype(np.uint8)

    def _give_up_exact(self) -> None:
        palette = self._palette()
        self.frames = [palette[f] for f in self.frames]
        self.exact = False
        self.lut = None

    def save(self, path: Path, duration: int, release: bool = False) -> None:
        """Write the GIF. Pillow copies every frame it is given and holds the copies until the file is
        written; ``release=True`` hands the frames over one by one and drops them here, so that the
        video is held once, not twice (this object is empty afterwards)."""
        from PIL import Image

        if release:
            self.lut = None  # 32 MB, used only by add()
        if self.exact:
            palette = self._palette().ravel().tolist()

            def image(f):
                im = Image.fromarray(f, "P")
                im.putpalette(palette)
                return im
        else:
            pick = np.linspace(0, len(self.frames) - 1, min(len(self.frames), 8)).round().astype(int)
            sample = Image.fromarray(np.concatenate([self.frames[i] for i in pick], axis=0))
            pal = sample.quantize(256, method=Image.Quantize.MEDIANCUT)

            def image(f):
                return Image.fromarray(f).quantize(palette=pal, dither=Image.Dither.NONE)

        images = (image(f) for f in (self._drain() if release else self.frames))
        first = next(images)
        first.save(path, format="GIF", save_all=True, append_images=images, duration=duration, loop=0)

    def _drain(self):
        """The frames in order, each removed from this object as it is taken."""
        self.frames.reverse()
        while self.frames:
            yield self.frames.pop()


def write_video(frames, out_path, fps: int = DEFAULT_FPS, release: bool = False) -> Path:
    """Write uint8 ``[H, W, 3]`` frames (an iterable) to ``out_path`` (.gif or .mp4); returns the path.
    ``release``: the frames of a compact rollout (``rollout(..., compact=True).frames``) may be dropped as
    they are written, so that a GIF does not hold the video twice; they are gone afterwards."""
    out_path = Path(out_path)
    check_path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    if out_path.suffix.lower() == ".gif":
        if isinstance(frames, _PaletteGif):  # recorded in palette form already (rollout(..., compact=True))
            gif, n = frames, len(frames)
        else:
            gif = _PaletteGif()
            for frame in frames:
                gif.add(_check_frame(frame, "a frame"))
                n += 1
        if n:
            # GIF frame times are multiples of 10 ms
            gif.save(out_path, duration=max(10, int(round(100.0 / max(fps, 1))) * 10), release=release)
    else:
        import warnings

        import imageio.v2 as iio2

        with warnings.catch_warnings():
            # imageio-ffmpeg starts ffmpeg with subprocess: the fork is followed by exec, which is safe under JAX
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            # H.264 in yuv420p needs even sizes; frames are padded to even sizes below, not resized
            writer = iio2.get_writer(out_path, format="FFMPEG", fps=fps, macro_block_size=1, pixelformat="yuv420p")
            try:
                for frame in frames:
                    f = _check_frame(frame, "a frame")
                    h, w = f.shape[:2]
                    if h % 2 or w % 2:
                        f = np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                    writer.append_data(f)
                    n += 1
            finally:
                writer.close()
    if n == 0:
        out_path.unlink(missing_ok=True)
        raise VideoError(
            f"no frames were recorded, so {out_path} was not written; give frames (a non-empty list of "
            "[height, width, 3] images) to write_video"
        )
    return out_path


# --------------------------------------------------------------------------- JAX-native envs


def _jax_fps(env_id: str, env) -> int:
    meta = getattr(env.unwrapped, "metadata", None) or {}
    if meta.get("render_fps"):
        return int(meta["render_fps"])
    try:  # the built-in classic-control envs mirror Gymnasium's, which know their frame rate
        import gymnasium
        from gymnasium.envs.registration import load_env_creator

        if env_id in gymnasium.registry:
            ep = gymnasium.spec(env_id).entry_point
            creator = load_env_creator(ep) if isinstance(ep, str) else ep
            return int(getattr(creator, "metadata", {}).get("render_fps") or DEFAULT_FPS)
    except Exception:  # noqa: BLE001 - the frame rate is cosmetic
        pass
    return DEFAULT_FPS


def _rollout_jax(run, algo, cfg, space, agent, episodes, deterministic, max_frames, frames) -> Rollout:
    import jax
    import jax.numpy as jnp

    from advantage import envs
    from advantage.envs.spaces import is_discrete, scale_action
    from advantage.envs.wrappers import EpisodeStats
    from advantage.training import rollout
    from advantage.training.rollout import DEFAULT_EVAL_MAX_STEPS

    env_kwargs = json.loads(run.env_kwargs) if run.env_kwargs else {}
    env, params = envs.make(run.env, **env_kwargs)
    if type(env.unwrapped).render is envs.Environment.render:
        raise VideoError(
            f"{run.env} has no renderer: give its Environment class a jittable "
            "render(self, state, params) returning a uint8 [height, width, 3] image"
        )
    stats_env = EpisodeStats(env)
    limit = int(run.eval_max_steps or getattr(env, "max_episode_steps", None) or DEFAULT_EVAL_MAX_STEPS)
    scan_len = min(limit, max_frames - 1)  # steps simulated per episode

    def to_env(action):
        if is_discrete(space):
            return action
        return scale_action(action, jnp.asarray(space.low), jnp.asarray(space.high))

    def play():  # the evaluation episodes 0 .. episodes - 1, every state kept
        act = lambda obs, key: algo.act(cfg, space, agent, obs[None], key, deterministic)[0][0]  # noqa: E731
        r = rollout.jax_episodes(stats_env, params, act, to_env, episodes, scan_len, keep_states=True)
        return r["states"], r["step_returns"], r["done"]

    states, rets, dones = jax.jit(play)()
    rets, dones = np.asarray(rets), np.asarray(dones)
    render = jax.jit(jax.vmap(lambda s: stats_env.render(s, params)))

    out = Rollout(frames, fps=_jax_fps(run.env, env), env=run.env, backend="jax")
    budget = max_frames
    for e in range(episodes):
        if budget < 2:
            out.cut_by_max_frames = True
            break
        steps = int(np.argmax(dones[e])) + 1 if dones[e].any() else scan_len  # steps of the episode simulated
        shown = min(steps, budget - 1)  # steps shown: frames are the first state and the state after each step
        if shown < steps or (not dones[e].any() and scan_len < limit):
            out.cut_by_max_frames = True
        ep_states = jax.tree.map(lambda x: x[e], states)
        n = shown + 1
        for start in range(0, n, RENDER_BATCH):
            idx = np.minimum(np.arange(start, start + RENDER_BATCH), n - 1)  # a fixed batch: one compilation
            imgs = np.asarray(render(jax.tree.map(lambda x: x[idx], ep_states)))
            out.frames.extend(_check_frame(imgs[j], f"{run.env}.render") for j in range(min(RENDER_BATCH, n - start)))
        budget -= n
        out.returns.append(float(rets[e, shown - 1]) if shown else 0.0)
        out.lengths.append(shown)
    return out


# --------------------------------------------------------------------------- Gymnasium envs


def _render_install_hint(env_id: str, e: Exception) -> str:
    from advantage.envs import registry

    jax_note = (
        f" {env_id} is also a built-in JAX-native env, which renders without extra packages: a run trained "
        "with --backend jax can be filmed as it is"
        if registry.is_registered(env_id)
        else ""
    )
    return (
        f"rendering {env_id} through Gymnasium needs a package that is not installed: {e}. (Box2D envs need "
        '`pip install "gymnasium[box2d]"`, MuJoCo envs `pip install "gymnasium[mujoco]"`.)' + jax_note
    )


def _rollout_gymnasium(run, algo, cfg, space, agent, episodes, deterministic, max_frames, frames) -> Rollout:
    import gymnasium
    import jax

    from advantage.envs.gymnasium import GymnasiumVecEnv
    from advantage.envs.validation import EnvError
    from advantage.training import rollout
    from advantage.training.rollout import DEFAULT_EVAL_MAX_STEPS

    env_kwargs = json.loads(run.env_kwargs) if run.env_kwargs else {}
    kwargs = {**env_kwargs, "render_mode": "rgb_array"}
    try:
        # the bridge builds the env and provides the agent's view of observations and actions
        vec = GymnasiumVecEnv(run.env, 1, env_kwargs=kwargs, validate=False)
    except EnvError as e:
        if "render_mode" in str(e):
            raise VideoError(
                f"cannot render {run.env}: its constructor takes no render_mode argument. Give it "
                "render_mode=None as a keyword argument and a render() that returns an RGB array when "
                "render_mode == 'rgb_array'"
            ) from None
        raise
    except (ImportError, gymnasium.error.DependencyNotInstalled) as e:
        raise VideoError(_render_install_hint(run.env, e)) from None
    modes = vec.metadata.get("render_modes") or []
    try:
        if "rgb_array" not in modes:
            raise VideoError(
                f"{run.env} cannot render images: its metadata['render_modes'] is {modes!r}, without "
                "'rgb_array'; add 'rgb_array' to them and return an RGB array from render()"
            )
        fps = int(vec.metadata.get("render_fps") or DEFAULT_FPS)
        act = jax.jit(lambda obs, key: algo.act(cfg, space, agent, obs, key, deterministic)[0])
        limit = run.eval_max_steps or vec.max_episode_steps or DEFAULT_EVAL_MAX_STEPS
        out = Rollout(frames, fps=fps, env=run.env, backend="gymnasium")

        def frame(env):
            try:
                img = env.render()
            except (ImportError, gymnasium.error.DependencyNotInstalled) as e:
                raise VideoError(_render_install_hint(run.env, e)) from None
            if img is None:
                raise VideoError(
                    f"{run.env}.render() returned None with render_mode='rgb_array'; it must return an RGB array"
                )
            out.frames.append(_check_frame(img, f"{run.env}.render()"))

        def go_on(new_episode: bool) -> bool:  # the frame budget: a first frame and one per step
            if len(out.frames) >= max_frames - (1 if new_episode else 0):
                out.cut_by_max_frames = True
                return False
            return True

        out.returns, out.lengths = rollout.host_render_episodes(vec, act, episodes, limit, frame, go_on)
        return out
    finally:
        vec.close()


# --------------------------------------------------------------------------- entry points


def rollout(
    run_dir,
    episodes: int = 1,
    seed_index: int = 0,
    deterministic: bool = True,
    max_frames: int = DEFAULT_MAX_FRAMES,
    compact: bool = False,
    loaded: tuple | None = None,
) -> Rollout:
    """Play ``episodes`` evaluation episodes with the agent of training seed number ``seed_index``
    of the run in ``run_dir`` and render every state (at most ``max_frames`` frames in all).
    ``compact``: keep the frames as palette indices as they come (a third of the memory; what
    :func:`record` does), falling back to RGB past 256 colours. ``loaded``: what ``loading.load_agents(run_dir)``
    returns, where the caller holds it already (the training process: no back end rebuilt, no checkpoint read)."""
    import jax

    from advantage.training import loading

    if episodes < 1:
        raise VideoError(f"episodes={episodes}: record at least one episode")
    if max_frames < 2:
        raise VideoError(f"max_frames={max_frames}: a video needs at least 2 frames")
    _, _, run = loading.load_run_config(run_dir)
    seeds = list(run.seeds)
    if not 0 <= seed_index < len(seeds):
        raise VideoError(
            f"seed index {seed_index} is out of range: {run_dir} has {len(seeds)} seed(s) {seeds} "
            f"(index 0 to {len(seeds) - 1})"
        )
    algo, cfg, space, agents = loaded if loaded is not None else loading.load_agents(run_dir)
    agent = jax.tree.map(lambda x: x[seed_index], agents)
    fn = _rollout_jax if run.backend == "jax" else _rollout_gymnasium
    out = fn(run, algo, cfg, space, agent, episodes, deterministic, max_frames, _PaletteGif() if compact else [])
    out.seed = seeds[seed_index]
    return out


def default_path(run_dir) -> Path:
    return Path(run_dir) / "videos" / "agent.gif"


def record(
    run_dir,
    out_path=None,
    episodes: int = 1,
    seed_index: int = 0,
    deterministic: bool = True,
    max_frames: int = DEFAULT_MAX_FRAMES,
    fps: int | None = None,
    loaded: tuple | None = None,
) -> Path:
    """Render the trained agent of ``run_dir`` to ``out_path`` (default ``RUN_DIR/videos/agent.gif``;
    ``.mp4`` needs ``imageio[ffmpeg]``) and return the path. See :func:`rollout`."""
    out_path = Path(out_path) if out_path is not None else default_path(run_dir)
    check_path(out_path)  # before the (slow) rollout
    r = rollout(run_dir, episodes, seed_index, deterministic, max_frames, compact=True, loaded=loaded)
    return write_video(r.frames, out_path, fps or r.fps, release=True)

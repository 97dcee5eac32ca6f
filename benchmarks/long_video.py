"""What an hour of video costs `train.predict`: wall time, CPU time and peak memory.

`python -m benchmarks.long_video [--video PATH] [--minutes 60] [--fps 5]`
writes a 1280x720 video of `--minutes` minutes once (kept under
`--cache`, default `.cache/benchmarks/`; `--video` uses a file of your
own instead) and a 30-second one, then runs on each, every run in a fresh
process:

- decoding alone (`data.stream.FrameStream`, every frame, nothing else):
  the floor the prediction is compared with;
- `train.predict` with keyframe runs (keyframe_transformer, frames mode
  through the smallest backbone, random weights: its tiny_frames preset at
  32x32, and the same at 224x224, whose inputs an hour at 2 fps would
  make 4.3 GB if they were all held): 2 samples per second scored in
  windows, shots, the summary video, keyframes;
- `train.predict` with a classifier run (r2plus1d, tiny preset, random
  weights): 5-second windows every 2.5 s, the timeline.

Each row gives the process's wall time, CPU time (user + system, from
`os.wait4`), peak resident memory (`ru_maxrss` of that child) and its wall
time over decoding alone. The weights are random: the point is what the
pipeline costs, not what it predicts. The written video is a story of
scenes (coloured backgrounds 20 to 90 seconds long, a disk and a bar
moving across them), at a low frame rate (`--fps`, default 5) because
OpenCV's MPEG-4 writer takes about as long per frame as decoding does and
an hour at 25 fps would take longer to write than to check.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from common.cli import ArgumentParser, run_main
from common.tables import markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (720, 1280)


def scene_plan(seconds, seed=0):
    """(start second, background colour) of every scene: 20 to 90 s each."""
    rng = np.random.default_rng(seed)
    plan, start = [], 0.0
    while start < seconds:
        plan.append((start, tuple(int(v) for v in rng.integers(30, 226, 3))))
        start += float(rng.uniform(20, 90))
    return plan


def write_story_video(path, seconds, fps):
    """A `seconds`-long 1280x720 MPEG-4 video of scenes (see the module
    docstring), written with cv2.VideoWriter; returns `path`."""
    import cv2

    from common.files import atomic_path

    height, width = SIZE
    plan = scene_plan(seconds)
    ramp = np.linspace(0.55, 1.0, width, dtype=np.float32)[None, :, None]
    backgrounds = [np.clip(np.full((height, width, 3), colour, np.float32) * ramp, 0, 255)
                   .astype(np.uint8) for _, colour in plan]
    count = int(round(seconds * fps))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as temporary:
        writer = cv2.VideoWriter(temporary, cv2.VideoWriter_fourcc(*"mp4v"), float(fps),
                                 (width, height))
        scene = 0
        for index in range(count):
            now = index / fps
            while scene + 1 < len(plan) and plan[scene + 1][0] <= now:
                scene += 1
            frame = backgrounds[scene].copy()
            phase = (now - plan[scene][0]) / 20.0
            centre = (int(width * (0.1 + 0.8 * (phase % 1.0))), int(height * (0.35 + 0.3 * (scene % 2))))
            cv2.circle(frame, centre, height // 9, (245, 245, 245), -1)
            top = int(height * (0.1 + 0.8 * ((0.5 * phase) % 1.0)))
            cv2.rectangle(frame, (width // 20, top), (width // 20 + 60, top + 24), (20, 20, 20), -1)
            writer.write(frame)
        writer.release()
    return path


def make_runs(folder):
    """A keyframe and a classifier run folder around freshly built models."""
    import models
    from train import run_folder

    runs = {}
    specs = {
        "keyframe 32x32": ("keyframe_transformer", "tiny_frames", {}, ["important"]),
        "keyframe 224x224": ("keyframe_transformer", "tiny_frames",
                             {"input_shape": (None, 224, 224, 3)}, ["important"]),
        "classifier": ("r2plus1d", "tiny", {}, ["a", "b", "c"]),
    }
    for kind, (name, preset, overrides, classes) in specs.items():
        config = models.get_config(name, preset, **overrides)
        model = models.build_from_config(name, config)
        out = os.path.join(folder, kind.replace(" ", "_"))
        os.makedirs(out)
        run_folder.write_start(out, {
            "model": name, "preset": preset, "seed": 0, "config": config.to_dict(),
            "data": {"data": "benchmark", "note": "random weights"}, "data_options": {},
        }, classes)
        model.save(os.path.join(out, "best.keras"))
        runs[kind] = out
    return runs


def make_runs_child(folder):
    """Runs in a fresh process (Keras stays out of the measuring process,
    whose memory every child would count from the fork on): writes the run
    folders; prints them and the machine's line as JSON."""
    from benchmarks.timing import machine_description

    print(json.dumps({"runs": make_runs(folder), "machine": machine_description()}))


def decode_only(video):
    """Runs in a fresh process: decodes every frame; prints the count."""
    from data.stream import FrameStream

    count = 0
    for _ in FrameStream(video):
        count += 1
    print(json.dumps({"frames": count}))


def measured(command):
    """Runs `command` as a child; (wall s, CPU s, peak RSS MiB, stdout)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.DEVNULL,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        output.seek(0)
        text = output.read()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} ended with exit code {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def rows_for(video, label, runs, scratch):
    rows = []
    wall, cpu, rss, text = measured([sys.executable, "-m", "benchmarks.long_video",
                                     "--decode-only", video])
    decode = wall
    frames = json.loads(text.strip().splitlines()[-1])["frames"]
    rows.append({"video": label, "run": f"decode only ({frames} frames)", "wall s": wall,
                 "CPU s": cpu, "peak RSS MiB": rss, "wall / decode": 1.0})
    for kind, run in runs.items():
        out = os.path.join(scratch, f"{kind}-{label}".replace(" ", "_"))
        wall, cpu, rss, text = measured([
            sys.executable, "-m", "train.predict", "--run", run, "--video", video, "--out", out,
            "--no-progress"])
        result = json.loads(text)
        detail = (f"{result['frames_scored']} samples, {result['shots_found']} shots"
                  if kind.startswith("keyframe") else f"{result['windows']} windows")
        rows.append({"video": label, "run": f"{kind} ({detail})", "wall s": wall, "CPU s": cpu,
                     "peak RSS MiB": rss, "wall / decode": wall / decode})
    return rows


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m benchmarks.long_video",
                            description=__doc__.split("\n")[0])
    parser.add_argument("--video", default=None,
                        help="a long video of your own instead of the written one")
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the written video")
    parser.add_argument("--fps", type=float, default=5.0, help="frame rate of the written videos")
    parser.add_argument("--short-seconds", type=float, default=30.0,
                        help="length of the short video the long one is compared with")
    parser.add_argument("--cache", default=os.path.join(ROOT, ".cache", "benchmarks"),
                        help="where the written videos are kept between runs")
    parser.add_argument("--decode-only", default=None, help=argparse_hidden())
    parser.add_argument("--make-runs", default=None, help=argparse_hidden())
    parser.add_argument("--write", nargs=3, default=None, help=argparse_hidden())
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.write:
        write_story_video(args.write[0], float(args.write[1]), float(args.write[2]))
        return 0
    if args.decode_only:
        decode_only(args.decode_only)
        return 0
    if args.make_runs:
        make_runs_child(args.make_runs)
        return 0
    if args.video is not None and not os.path.isfile(args.video):
        raise FileNotFoundError(f"--video {args.video}: no such file")

    name = f"story_{SIZE[1]}x{SIZE[0]}_{args.fps:g}fps"
    short = os.path.join(args.cache, f"{name}_{args.short_seconds:g}s.mp4")
    long = args.video or os.path.join(args.cache, f"{name}_{args.minutes:g}min.mp4")
    for path, seconds in ((short, args.short_seconds), (long, 60 * args.minutes)):
        if not os.path.exists(path):
            # In a child: the measuring process stays small (see make_runs_child).
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "benchmarks.long_video", "--write", path,
                            str(seconds), str(args.fps)], cwd=ROOT, check=True)
            print(f"wrote {path} in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        made = json.loads(subprocess.run(
            [sys.executable, "-m", "benchmarks.long_video", "--make-runs",
             os.path.join(scratch, "runs")], cwd=ROOT, check=True, capture_output=True,
            text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout.splitlines()[-1])
        runs = made["runs"]
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows = rows_for(short, f"{args.short_seconds:g} s", runs, scratch)
        rows += rows_for(long, os.path.basename(long) if args.video else f"{args.minutes:g} min",
                         runs, scratch)
    load_after = os.getloadavg()
    print(f"machine: {made['machine']}")
    print(f"load average (1, 5, 15 min) before: {', '.join(f'{v:.1f}' for v in load_before)}; "
          f"after: {', '.join(f'{v:.1f}' for v in load_after)}")
    print(f"videos: 1280x720 MPEG-4 at {args.fps:g} fps, written with cv2.VideoWriter"
          if not args.video else f"long video: {args.video}")
    print()
    print(markdown_table(rows, ["video", "run", "wall s", "CPU s", "peak RSS MiB",
                                "wall / decode"]))
    print(f"\n(a child's peak RSS counts from the fork, when it shares this process's "
          f"{own:.0f} MiB)")
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(run_main(main))

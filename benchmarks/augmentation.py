"""Does clip training still converge with RandAugment, MixUp and CutMix?

    python -m benchmarks.augmentation [--data embedded|videos] [--videos DIR]
        [--variants none,rand_augment,mixup,cutmix,all] [--epochs 12]
        [--learning-rate LR] [--seed 0] [--out DIR]

Trains `convlstm` once per augmentation variant with `python -m train.run`
(one child process per run, the same seed, data and epochs; early stopping
off so every run trains every epoch; `--learning-rate` replaces the
notes' 8e-5 in every run alike) and prints, per variant, the training
loss of the first and last epoch, the best validation loss and the epoch it
came in, and the held-out test numbers of the kept checkpoint. The table
also lands in `<out>/augmentation.json`. A run folder that is already there
resumes (or is read when finished), so the command can be stopped and
started again.

Variants (the README's flags): `none`; `rand_augment` (`--rand-augment 2`,
magnitude 9); `mixup` (`--mixup-alpha 0.2`); `cutmix` (`--cutmix-alpha
1.0`); `all` (the three together: each clip draws RandAugment ops, then
MixUp or CutMix).

Data:

- `embedded`: the embedded synthetic clips at convlstm's `demo` preset
  (16x48x64x4, motion task, 192/48/64 clips).
- `videos`: a folder of MP4 files decoded by the video pipeline, as a
  user's folder would be. `--videos DIR` is used as it is when it holds a
  `manifest.csv` (path,label,split); otherwise the folder is written first:
  four motion classes that a horizontal flip keeps (horizontal, vertical,
  circular, static), 32/8/12 videos per class for train/val/test, 48 frames
  of 120x160 at 24 fps, RGB, MPEG-4, one shape over a noisy background
  (`data.synthetic.render_clip`), then sampled to 16x48x64x3 clips and kept
  in memory (`--cache memory`) by `train.run`.

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import csv
import io
import os
import subprocess
import sys

import numpy as np

from common.cli import ArgumentParser, run_main
from common.files import read_json, write_atomic, write_json

VARIANTS = {
    "none": [],
    "rand_augment": ["--rand-augment", "2"],
    "mixup": ["--mixup-alpha", "0.2"],
    "cutmix": ["--cutmix-alpha", "1.0"],
    "all": ["--rand-augment", "2", "--mixup-alpha", "0.2", "--cutmix-alpha", "1.0"],
}
VIDEO_CLASSES = ("horizontal", "vertical", "circular", "static")
VIDEO_SPLITS = {"train": 32, "val": 8, "test": 12}
VIDEO_FRAMES, VIDEO_SIZE, VIDEO_FPS = 48, (120, 160), 24.0
VIDEO_CLIP = "16,48,64,3"


def write_motion_videos(root, classes=VIDEO_CLASSES, per_split=None, frames=VIDEO_FRAMES,
                        size=VIDEO_SIZE, fps=VIDEO_FPS, seed=0):
    """Writes `root/<class>/<split>_<n>.mp4` and `root/manifest.csv`.

    Returns the manifest's path. The same arguments give the same frames
    (the encoder's bytes may differ between OpenCV builds).
    """
    from data.synthetic import SHAPES, render_clip  # see the module doc: imported when needed
    from data.video import write_video  # see the module doc: imported when needed

    per_split = per_split or VIDEO_SPLITS
    rng = np.random.default_rng(seed)
    rows = []
    for split, count in per_split.items():
        for index in range(count):
            for label in classes:
                shape = SHAPES[rng.integers(len(SHAPES))]
                clip = render_clip(rng, label, shape, frames, size[0], size[1], 3)
                relative = os.path.join(label, f"{split}_{index:03d}.mp4")
                write_video(os.path.join(root, relative), clip, fps=fps)
                rows.append((relative, label, split))
    # Written last and whole: a folder whose writing was cut short has no
    # manifest, so the next start writes it again instead of trusting it.
    manifest = os.path.join(root, "manifest.csv")
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([("path", "label", "split"), *rows])
    write_atomic(manifest, text.getvalue())
    return manifest


def run_flags(data, videos):
    """The `train.run` flags that choose the data."""
    if data == "embedded":
        return []
    manifest = os.path.join(videos, "manifest.csv")
    if not os.path.exists(manifest):
        print(f"writing {sum(VIDEO_SPLITS.values()) * len(VIDEO_CLASSES)} videos into {videos}")
        write_motion_videos(videos)
    return ["--data", manifest, "--cache", "memory", "--input-shape", VIDEO_CLIP,
            "--num-classes", str(len(VIDEO_CLASSES))]


def summarize(folder):
    """The row of one finished run folder."""
    with open(os.path.join(folder, "history.csv")) as file:
        history = list(csv.DictReader(file))
    metrics = read_json(os.path.join(folder, "metrics.json"), "run metrics file")
    val_losses = [float(row["val_loss"]) for row in history]
    best = int(np.argmin(val_losses))
    row = {
        "epochs": len(history),
        "first_loss": float(history[0]["loss"]),
        "last_loss": float(history[-1]["loss"]),
        "first_val_loss": val_losses[0],
        "best_val_loss": val_losses[best],
        "best_epoch": best + 1,
    }
    for key in ("test_accuracy", "test_auc", "test_mean_class_accuracy"):
        if key in metrics:
            row[key] = float(metrics[key])
    return row


def table(rows):
    """A Markdown table of the rows, one per variant."""
    columns = ["first_loss", "last_loss", "first_val_loss", "best_val_loss", "best_epoch"]
    columns += [key for key in ("test_accuracy", "test_mean_class_accuracy", "test_auc")
                if any(key in row for row in rows.values())]
    lines = ["| variant | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, ""))
                 for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m benchmarks.augmentation", description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=("embedded", "videos"), default="embedded",
                        help="the embedded synthetic clips, or a folder of video files")
    parser.add_argument("--videos", default="runs/augmentation_videos",
                        help="folder of the videos (written when it has no manifest.csv)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--epochs", type=int, default=12, help="epochs of every run")
    parser.add_argument("--learning-rate", type=float, default=8e-5,
                        help="Adam's learning rate of every run (the notes' convlstm rate; the "
                        "demo preset's faster 1e-3 is for the first run, not this comparison)")
    parser.add_argument("--seed", type=int, default=0, help="the one seed of every run")
    parser.add_argument("--out", default=None, help="default: runs/augmentation_<data>")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"--variants: unknown {unknown or args.variants!r}; choose from {', '.join(VARIANTS)}")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    out = args.out or os.path.join("runs", f"augmentation_{args.data}")
    shared_flags = run_flags(args.data, args.videos)
    shared_flags += ["--learning-rate", repr(args.learning_rate)]
    rows = {}
    for name in variants:
        folder = os.path.join(out, name)
        if not os.path.exists(os.path.join(folder, "metrics.json")):
            command = [
                sys.executable, "-m", "train.run", "--model", "convlstm", "--out", folder,
                "--seed", str(args.seed), "--epochs", str(args.epochs),
                "--patience", str(args.epochs), "--verbose", "2", *shared_flags, *VARIANTS[name],
            ]
            print("$", " ".join(command[1:]), flush=True)
            returncode = subprocess.run(command).returncode
            if returncode:
                print(f"error: the {name} run stopped with exit code {returncode}", file=sys.stderr)
                return returncode
        rows[name] = summarize(folder)
        print(table({name: rows[name]}).splitlines()[-1], flush=True)
    result = {"data": args.data, "epochs": args.epochs, "seed": args.seed,
              "learning_rate": args.learning_rate,
              "runs": [{"variant": name, "flags": VARIANTS[name], **row} for name, row in rows.items()]}
    write_json(os.path.join(out, "augmentation.json"), result)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))

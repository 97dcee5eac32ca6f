"""python -m data.extract: frozen-backbone features of a video collection, to HDF5.

VIDEOS is a class-per-folder tree (root/<class>/<video>) or a CSV manifest
(path,label[,split]); see data/datasets.py. The output schema, resuming and
crash safety are described in data/features.py.

Example:

    python -m data.extract videos/ --out features.h5 --backbone efficientnet_v2_s \\
        --weights imagenet --frames 64 --size 256 256
"""

import sys

from common.cli import ArgumentParser, HelpFormatter, run_main
from data.datasets import scan_dataset
from data.features import (
    DEFAULT_BACKBONE,
    DEFAULT_EXTRACT_SIZE,
    DEFAULT_SCALE_SOURCE,
    SCALE_SOURCES,
    extract_features,
)


class _HelpFormatter(HelpFormatter):
    """Shows defaults, except for on/off flags and required options."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.required:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    from models.backbones import BACKBONES

    parser = ArgumentParser(
        prog="python -m data.extract",
        description=(
            "Extract per-frame features of every video with a frozen keras.applications "
            "backbone into one HDF5 file. Re-running resumes: videos already in the file "
            "are skipped, an interrupted run continues from OUT.partial."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("videos", metavar="VIDEOS",
                        help="class-per-folder tree root/<class>/<video>, or a CSV manifest path,label[,split]")
    parser.add_argument("--out", required=True, metavar="FILE.h5", help="the HDF5 file to write")
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=sorted(BACKBONES),
                        help="frame backbone (feature size: " +
                        ", ".join(f"{name} {dim}" for name, dim in sorted(BACKBONES.items())) + ")")
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet' (Keras downloads them), a local .h5/.weights.h5 file, "
                             "or 'none' (random weights: features for plumbing tests only)")
    parser.add_argument("--frames", type=int, default=64,
                        help="frames sampled uniformly per video (at temporal scale 1.0)")
    parser.add_argument("--size", type=int, nargs=2, default=list(DEFAULT_EXTRACT_SIZE),
                        metavar=("H", "W"), help="frame size fed to the backbone")
    parser.add_argument("--batch-size", type=int, default=32, help="frames per backbone call")
    parser.add_argument("--no-multi-scale", dest="multi_scale", action="store_false",
                        help="one temporal scale instead of averaging scales 1.0, 0.85 and 1.15")
    parser.add_argument("--scale-source", choices=SCALE_SOURCES, default=DEFAULT_SCALE_SOURCE,
                        help="where the 0.85x and 1.15x frames come from: 'sampled' resamples "
                             "them from the --frames sampled frames (the design notes' recipe; "
                             "1.15x repeats frames), 'video' samples them over the whole video")
    parser.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                        help="an unreadable video: skip it (listed in the log and in the file's "
                             "'skipped' attribute) or stop")
    parser.add_argument("--retry-skipped", action="store_true",
                        help="also retry videos an earlier run skipped")
    parser.add_argument("--split-dir", default=None,
                        help="folder of HMDB51 or UCF101 split lists (folder trees only); the "
                             "split of each video is stored in the file")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3),
                        help="which official split --split-dir describes")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the backbone's initialisation (matters with --weights none)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if min(args.size) < 32:
        raise ValueError(f"--size must be at least 32 32 (keras.applications' minimum), got {args.size}")
    dataset = scan_dataset(args.videos, split_dir=args.split_dir, split=args.split)
    print(f"{len(dataset)} videos in {dataset.num_classes} classes from {args.videos}", file=sys.stderr)
    summary = extract_features(
        dataset,
        args.out,
        backbone=args.backbone,
        weights=args.weights,
        num_frames=args.frames,
        size=tuple(args.size),
        batch_size=args.batch_size,
        multi_scale=args.multi_scale,
        scale_source=args.scale_source,
        on_error=args.on_error,
        retry_skipped=args.retry_skipped,
        seed=args.seed,
        progress=args.progress,
    )
    rate = summary.written / summary.seconds if summary.seconds else 0.0
    print(
        f"wrote {summary.out}: {summary.already_done + summary.written} videos "
        f"({summary.written} new, {rate:.2f} videos/s), {len(summary.skipped)} skipped",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))

"""python -m data.extract: frozen-backbone features of a video collection, to HDF5.

VIDEOS is a class-per-folder tree (root/<class>/<video>) or a CSV manifest
(path,label[,split]); see data/datasets.py. The output schema, resuming and
crash safety are described in data/features.py. Every video's frames are
decoded in a separate process (`data.decoder_process`) and sent back: a
file that crashes or hangs the decoder, a still image and a one-frame file
are skipped like any unreadable video (or stop the run with `--on-error
fail`).

Example:

    python -m data.extract videos/ --out features.h5 --backbone efficientnet_v2_s \\
        --weights imagenet --frames 64 --size 256 256

Across machines. Each process takes every N-th video of the list (share I
takes videos I, I + N, ...) into its own resumable part file, OUT.h5 ->
OUT.part-0000I-of-0000N.h5; `--merge OUT.h5` then joins the parts into the
one file a single process would have written (same rows in the same order,
same attributes). N and I come from `--num-shards N --shard-index I` (job
arrays), or else from TF_CONFIG, as training reads it: every chief and
worker task of the cluster takes one share, the chief first, then the
workers in order (`common.cluster.worker_shard`). Every machine must see
the videos at the same absolute paths (a shared filesystem), as rows
record them and the parts are checked to come from the same video list.

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python -m data.extract videos/ --out features.h5 --weights imagenet
    python -m data.extract --merge features.h5
"""

import os
import sys

from common.cli import ArgumentParser, HelpFormatter, run_main
from common.cluster import read_tf_config, worker_shard
from data.check import check_before
from data.datasets import scan_dataset
from data.features import (
    DEFAULT_BACKBONE,
    DEFAULT_EXTRACT_SIZE,
    DEFAULT_SCALE_SOURCE,
    SCALE_SOURCES,
    extract_features,
    merge_feature_parts,
)


class _HelpFormatter(HelpFormatter):
    """Shows defaults, except for on/off flags and required options."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.required:
            return action.help
        return super()._get_help_string(action)


def build_parser():
    from models.backbones import BACKBONES  # Keras: loaded once the flags parse

    parser = ArgumentParser(
        prog="python -m data.extract",
        description=(
            "Extract per-frame features of every video with a frozen keras.applications "
            "backbone into one HDF5 file. Re-running resumes: videos already in the file "
            "are skipped, an interrupted run continues from OUT.partial. Across machines, "
            "each process extracts its share into OUT.part-I-of-N.h5 and --merge joins them."
        ),
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("videos", metavar="VIDEOS", nargs="?",
                        help="class-per-folder tree root/<class>/<video>, or a CSV manifest path,label[,split]")
    parser.add_argument("--out", metavar="FILE.h5", help="the HDF5 file to write (required)")
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
    parser.add_argument("--check", action="store_true",
                        help="first run the quick data check (python -m data.check --quick) "
                             "on VIDEOS and stop if it finds an error")
    shards = parser.add_argument_group("across machines")
    shards.add_argument("--num-shards", type=int, default=None, metavar="N",
                        help="split the videos in N shares (with --shard-index; default: from "
                             "TF_CONFIG's chief and worker tasks if it is set, else 1)")
    shards.add_argument("--shard-index", type=int, default=None, metavar="I",
                        help="extract share I (0..N-1) into OUT.part-I-of-N.h5")
    shards.add_argument("--merge", nargs="+", default=None, metavar=("OUT.h5", "PART"),
                        help="join part files into OUT.h5 instead of extracting (parts default "
                             "to OUT.part-*-of-*.h5); OUT.h5 is never overwritten")
    return parser


def resolve_shard(num_shards, shard_index):
    """(shard_index, num_shards) from the flags, else TF_CONFIG, else (0, 1)."""
    if (num_shards is None) != (shard_index is None):
        raise ValueError("--num-shards and --shard-index go together; give both or neither")
    if num_shards is not None:
        if num_shards < 1:
            raise ValueError(f"--num-shards must be >= 1, got {num_shards}")
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"--shard-index must be in [0, {num_shards}), got {shard_index}")
        return shard_index, num_shards
    if os.environ.get("TF_CONFIG"):
        return worker_shard(*read_tf_config("extraction across machines"))
    return 0, 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.merge is not None:
        if args.videos is not None or args.out is not None:
            raise ValueError("--merge OUT.h5 [PART ...] takes no VIDEOS and no --out")
        out, *parts = args.merge
        summary = merge_feature_parts(out, parts)
        print(f"wrote {summary.out}: {summary.already_done + summary.written} videos, "
              f"{len(summary.skipped)} skipped", file=sys.stderr)
        return 0
    if args.videos is None or args.out is None:
        raise ValueError("VIDEOS and --out FILE.h5 are required (or --merge OUT.h5)")
    shard_index, num_shards = resolve_shard(args.num_shards, args.shard_index)
    if args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if min(args.size) < 32:
        raise ValueError(f"--size must be at least 32 32 (keras.applications' minimum), got {args.size}")
    if args.check:
        check_before([(args.videos, args.split_dir, args.split)])
    dataset = scan_dataset(args.videos, split_dir=args.split_dir, split=args.split)
    print(f"{len(dataset)} videos in {dataset.num_classes} classes from {args.videos}", file=sys.stderr)
    if num_shards > 1:
        print(f"extracting share {shard_index} of {num_shards}", file=sys.stderr)
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
        num_shards=num_shards,
        shard_index=shard_index,
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

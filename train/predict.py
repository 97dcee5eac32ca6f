"""One video in, answer out: `python -m train.predict --run DIR --video FILE`.

For a frame-scoring run (keyframe_transformer) the answer is the video's
keyframes: printed as JSON (frame index, timestamp, score) and written with
a contact sheet and a score plot (see `train.keyframes`).
"""

import json
import sys

from data.cli import ArgumentParser, run_main


def build_parser():
    parser = ArgumentParser(
        prog="python -m train.predict",
        description="Score one video with a trained run and print its keyframes as JSON.",
    )
    parser.add_argument("--run", required=True, help="run folder (holds best.keras and config.json)")
    parser.add_argument("--video", required=True, help="video file (.mp4, .avi, .mov, .mkv, .webm)")
    parser.add_argument(
        "--ratio", type=float, default=0.15,
        help="share of the scored frames kept as keyframes (at least one)",
    )
    parser.add_argument(
        "--frames", type=int, default=60,
        help="frames sampled uniformly over the video and scored",
    )
    parser.add_argument(
        "--out", default=None,
        help="folder for keyframes.json, contact_sheet.png and scores.png "
        "(default: RUN/predictions/<video name>)",
    )
    parser.add_argument(
        "--backbone", default=None,
        help="for runs trained on a feature file: the backbone that made its features",
    )
    parser.add_argument(
        "--backbone-weights", default="imagenet",
        help="weights of --backbone: imagenet, a local file, or none",
    )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from train import keyframes

    result = keyframes.predict_keyframes(
        args.run, args.video, ratio=args.ratio, num_frames=args.frames, out=args.out,
        backbone=args.backbone, backbone_weights=args.backbone_weights,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))

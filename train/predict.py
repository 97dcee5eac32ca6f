"""One video in, a result out: `python -m train.predict --run DIR --video FILE`.

The run's task makes the result. For a frame-scoring run
(keyframe_transformer) it is the video's keyframes, printed as JSON (frame
index, timestamp, score) and written with a contact sheet and a score plot.
"""

import json
import os
import sys

from common.cli import ArgumentParser, run_main


def build_parser():
    parser = ArgumentParser(
        prog="python -m train.predict",
        description="Run a trained model on one video and print its result as JSON.",
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
        help="folder for the result files (default: RUN/predictions/<video name>)",
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
    from train import evaluate, tasks

    args = build_parser().parse_args(argv)
    record, model = evaluate.load_run(args.run)
    task = tasks.task_for(record["model"])
    out = args.out or os.path.join(
        args.run, "predictions", os.path.splitext(os.path.basename(args.video))[0]
    )
    result = task.predict(model, record, args.video, vars(args), out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))

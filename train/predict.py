"""Videos in, results out: `python -m train.predict --run DIR --video PATH|FOLDER`.

The run's task makes the result (`Task.predictor`), the same one
`train.app` serves:

- a classifier run (convlstm, r2plus1d, r2plus1d_perceiver,
  bilstm_attention) gives the video's top-k labels with probabilities;
  a video longer than `--window` seconds is covered by sliding windows and
  also gets `timeline.json` and `timeline.png` (`train.tasks.timeline`);
- a keyframe run (keyframe_transformer) scores frames at `--sample-rate`
  per second, cuts shots with KTS, chooses shots with the protocol's
  knapsack at `--ratio` of the duration and writes `summary.mp4`,
  `keyshots.json`, `scores.png`, `keyframes/` and `contact_sheet.png`
  (`train.tasks.keyframes`).

With `--explain`, every result also gets what the model looked at
(`train.serving.explain`): `explanation.mp4`, `explanation.png` and
`explanation.json`; a run whose model has no explanation is refused before
any result folder is made.

Every video gets its own new folder, `<out>/<video name>` (default `out`:
RUN/predictions), or `<video name>-2`, `-3`, ... when that exists, so no
earlier result is ever replaced. A single video prints its result as JSON;
a folder is a batch: every video file in it (and its subfolders, in sorted
order, leaving out the `--out` folder when it lies inside) is predicted and
printed as one JSON line, with progress on stderr, and a file that does not
decode is reported (on stderr and as a JSON line with an "error") and
skipped.

Every file is decoded once in a separate process first
(`data.decoder_process`): a file that crashes or hangs the decoder is
reported as one that could not be decoded, and a batch goes on with the
next file. Still images and files of one frame are refused as videos.

`--stream` (runs whose model has a frame-by-frame form) feeds the video to the model one frame at a
time (`train.serving.streaming.stream_video`) and writes `stream.json`: the
probabilities after every frame (every frame, or `--stream-fps` frames per
second of video), with the frame's index and time
(`train.serving.streaming`).
"""

import json
import math
import os
import shutil
import sys

from common.cli import ArgumentParser, run_main
from common.files import write_json
from common.progress import Progress
from data.decoder_process import check_video
from train.serving.prediction import (
    PredictOptions,
    describe_result,
    list_videos,
    predict_one,
    result_folder,
)


def build_parser():
    defaults = PredictOptions()
    parser = ArgumentParser(
        prog="python -m train.predict",
        description="Run a trained model on a video, or on every video of a folder, and "
        "print the result as JSON.",
    )
    parser.add_argument("--run", required=True, help="run folder (holds best.keras and config.json)")
    parser.add_argument(
        "--video", required=True,
        help="a video file (.mp4, .avi, .mov, .mkv, .webm), or a folder of them",
    )
    parser.add_argument(
        "--out", default=None,
        help="folder under which every video gets a new result folder (default: RUN/predictions)",
    )
    keyframe = parser.add_argument_group("keyframe runs")
    keyframe.add_argument(
        "--ratio", type=float, default=defaults.ratio,
        help="the summary's share of the video's duration, in (0, 1)",
    )
    keyframe.add_argument(
        "--sample-rate", type=float, default=defaults.sample_rate,
        help="frames scored per second of video",
    )
    classifier = parser.add_argument_group("classifier runs")
    classifier.add_argument(
        "--window", type=float, default=defaults.window,
        help="seconds of video per prediction; longer videos get sliding windows",
    )
    classifier.add_argument(
        "--stride", type=float, default=defaults.stride, help="seconds between window starts",
    )
    classifier.add_argument("--top-k", type=int, default=defaults.top_k, help="labels reported")
    parser.add_argument(
        "--explain", action="store_true",
        help="also write what the model looked at: attention over frames (bilstm_attention, "
        "keyframe_transformer), cross-attention heat maps (r2plus1d_perceiver) or Grad-CAM "
        "(convlstm, r2plus1d), as explanation.mp4, explanation.png and explanation.json",
    )
    classifier.add_argument(
        "--stream", action="store_true",
        help="convlstm runs: feed the video frame by frame and write the probabilities after "
        "every frame (stream.json)",
    )
    classifier.add_argument(
        "--stream-fps", type=float, default=None,
        help="with --stream: frames streamed per second of video (default: every frame)",
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false",
        help="no progress line (the position in the video and the time left)",
    )
    features = parser.add_argument_group("runs trained on feature files")
    features.add_argument(
        "--backbone", default=None,
        help="the backbone that made the run's features (default: the one the run recorded)",
    )
    features.add_argument(
        "--backbone-weights", default=None,
        help="weights of the backbone: imagenet, a local file, or none (default: those the "
        "features were extracted with)",
    )
    return parser


def stream_one(model, record, args):
    """`--stream`: the probabilities after every frame, printed and written
    to `stream.json` in a new result folder."""
    from train.serving import streaming  # TensorFlow, once the flags are checked

    result = streaming.stream_video(model, record, args.video, fps=args.stream_fps).to_json()
    out = result_folder(args.out or os.path.join(args.run, "predictions"), args.video)
    try:
        write_json(os.path.join(out, "stream.json"), result)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    result["folder"] = os.path.abspath(out)
    print(json.dumps(result))
    return 0


def main(argv=None):
    # TensorFlow loads only once the flags are checked.
    from train import run_folder, tasks

    args = build_parser().parse_args(argv)
    options = PredictOptions.from_dict(vars(args))
    if not os.path.exists(args.video):
        raise FileNotFoundError(f"--video {args.video}: no such file or folder")
    batch = os.path.isdir(args.video)
    if args.stream_fps is not None and not args.stream:
        raise ValueError("--stream-fps is used only with --stream")
    if args.stream_fps is not None and not (math.isfinite(args.stream_fps) and args.stream_fps > 0):
        raise ValueError(
            f"--stream-fps must be a number of frames per second > 0, got {args.stream_fps}")
    root = args.out or os.path.join(args.run, "predictions")
    if os.path.exists(root) and not os.path.isdir(root):
        raise NotADirectoryError(f"--out {root}: a file, but a folder is expected")
    if args.stream and args.explain:
        raise ValueError("--explain explains whole windows; it does not go with --stream")
    if args.stream and batch:
        raise ValueError(f"--stream: --video {args.video} is a folder; stream one video file")
    if batch:
        # The results of earlier runs into a folder inside --video are not input.
        videos = list_videos(args.video, exclude=root)
        if not videos:
            raise ValueError(
                f"--video {args.video}: a folder with no video files (.mp4, .avi, .mov, .mkv, .webm)"
                + (f" outside --out {root}" if list_videos(args.video) else "")
            )
    else:
        # A file that is not a video is refused before the model loads.
        check_video(args.video)
    record, model = run_folder.load_run(args.run)
    if args.stream:
        return stream_one(model, record, args)
    predictor = tasks.task_for(record["model"]).predictor(model, record, options)
    if not batch:
        result = predict_one(predictor, args.video, root)
        print(json.dumps(result, indent=2))
        for line in describe_result(result):  # for a person; stdout stays the JSON
            print(line, file=sys.stderr)
        return 0

    progress = Progress(len(videos))
    failed = 0
    for video in videos:
        try:
            check_video(video)  # decoded in the decoder process first: a crash there skips it
            result = predict_one(predictor, video, root)
        except ValueError as error:  # a video that does not decode (VideoError), or too short
            failed += 1
            print(json.dumps({"video": os.path.abspath(video), "error": str(error)}), flush=True)
            print(f"skipped {error}", file=sys.stderr)
            progress.step(os.path.basename(video), "skipped")
            continue
        print(json.dumps(result), flush=True)
        progress.step(os.path.basename(video), "done")
    print(f"{len(videos) - failed} of {len(videos)} videos predicted into {root}", file=sys.stderr)
    if failed == len(videos):
        raise ValueError(f"--video {args.video}: none of its {len(videos)} videos could be predicted")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main, sys.argv[1:]))

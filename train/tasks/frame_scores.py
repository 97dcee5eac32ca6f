"""The "frame_scores" task: per-frame importance scores and the summarization protocol.

Frame-scoring models (`keyframe_transformer`) train on videos with a
per-frame importance target:

    python -m train.run --model keyframe_transformer                   # embedded set
    python -m train.run --model keyframe_transformer \\
        --dataset eccv16_dataset_tvsum_google_pool5.h5 --split-file tvsum_splits.json --split 0

With `--dataset`, the public summarization HDF5 file is read with its
schema checked (`data.summarization`); the split is one of the five random
80/20 splits, from `--split-file` (the public JSON format) or generated from
`--split-seed` (and saved with `--write-splits`). The validation videos
that pick the best epoch are a seeded share of the split's training
videos, so the reported epoch is chosen without looking at test scores.

Without `--dataset`, the embedded synthetic set: videos with short events
whose frames are the important ones (`data.summarization`). Features mode
gets the file schema's records with cheap projection features; frames mode
gets the rendered frames at the config's frame size (the family's
`"demo_frames"` preset: 64x64).

The report (`summary_report`) follows the field's protocol
(`train.metrics.summarization`): keyshot F-score, averaged over user summaries for
TVSum and maximum for SumMe, Kendall's tau and Spearman's rho against each
annotator (Otani et al.), plus the design notes' metrics. The published
anchors (DSNet, VASNet, PGL-SUM, human agreement) are printed beside ours
only when the data is the set they were measured on (`recognise_benchmark`):
numbers on the embedded synthetic videos are not comparable with them.
"""

import dataclasses
import json
import os

import numpy as np

from common.files import atomic_path, read_json, write_json
from data import summarization
from data.pipeline import epoch_stream
from data.sequences import sequence_dataset
from data.video import VIDEO_EXTENSIONS, probe_video, read_frames
from train.formats.gates import MeanRankCorrelation
from train.metrics.baselines import summarization_baselines
from train.metrics import summarization as summary_eval
from train.tasks.base import DataBundle, Task, check_fraction, check_path, option
from train.tasks.keyframes import KeyframePredictor

SYNTHETIC_FEATURE_FRAME_SIZE = (32, 32)

# The public benchmark files, told apart by their structure: TVSum has 50
# videos, each summarised by 20 users (Song et al., CVPR 2015); SumMe has
# 25 videos, each by 15 to 18 users (Gygli et al., ECCV 2014).
SUMMARY_BENCHMARKS = {"tvsum": (50, 20, 20), "summe": (25, 15, 18)}


@dataclasses.dataclass
class SummaryBundle(DataBundle):
    """A `DataBundle` plus what the summarization protocol needs.

    Args:
        videos: key -> `data.summarization.SummaryVideo` (protocol fields).
        inputs: key -> the model input of the video: features [T, D] or
            frames [T, H, W, 3], one row per pick.
        input_name: `"features"` or `"frames"`.
        keys: `{"train": [...], "val": [...], "test": [...]}`.
        reduction: `"avg"` (TVSum) or `"max"` (SumMe).
        benchmark: `"tvsum"` or `"summe"` when the data is that public
            set (`recognise_benchmark`), else None.
    """

    videos: dict = dataclasses.field(default_factory=dict)
    inputs: dict = dataclasses.field(default_factory=dict)
    input_name: str = "features"
    keys: dict = dataclasses.field(default_factory=dict)
    reduction: str = "avg"
    benchmark: str | None = None


@dataclasses.dataclass(frozen=True)
class FrameScoreOptions:
    """Data options of the frame_scores task (one command-line flag each)."""

    dataset: str | None = option(
        None,
        "a summarization HDF5 file of the public schema (e.g. "
        "eccv16_dataset_tvsum_google_pool5.h5); without it, the embedded synthetic videos",
    )
    split_file: str | None = option(
        None,
        'JSON list of {"train_keys": [...], "test_keys": [...]}; without it, five random '
        "80/20 splits from --split-seed",
    )
    split: int = option(0, "which split of the list to train on")
    split_seed: int = option(0, "seed of the generated random splits (when no --split-file)")
    write_splits: str | None = option(
        None, "save the generated splits to this JSON file (the public format)"
    )
    val_fraction: float = option(
        0.15, "share of the split's training videos held out to choose the best epoch"
    )
    reduction: str = option(
        "auto",
        "F-score over user summaries: avg (TVSum), max (SumMe); auto: max when the "
        "file name says summe",
        choices=("auto", "avg", "max"),
    )
    synthetic_videos: int = option(60, "videos in the embedded synthetic set")
    videos: str | None = option(
        None,
        "with --dataset in frames mode: the data set's video folder; each video of the "
        "file is found by its key or its video_name and read at the file's picks",
    )
    frame_cache: str = option(
        os.path.join("runs", ".cache"),
        "folder of the frames read from --videos (one uint8 array per video, read once)",
    )


class FrameScoreTask(Task):
    kind = "frame_scores"
    Options = FrameScoreOptions

    def embedded_preset(self, options, config):
        if options.dataset is not None:
            return None
        return "demo_frames" if config.reads_frames else "demo"

    def example_pipeline(self, config, batch_size):
        steps = config.input_shape[0] or 60
        rng = np.random.default_rng(0)
        videos = [
            rng.uniform(0, 255, size=(steps, *config.input_shape[1:])).astype(np.float32)
            for _ in range(2)
        ]
        scores = [rng.uniform(size=steps).astype(np.float32) for _ in videos]
        name = "frames" if config.reads_frames else "features"
        return sequence_dataset(videos, None, scores, batch_size, input_name=name,
                                shuffle=True, seed=0)

    def load(self, options, config, seed, split_seed=None):
        return load_frame_scores(options, config, seed, seed if split_seed is None else split_seed)

    def evaluate(self, models, bundle, split):
        keys = bundle.keys.get(split) or []
        if not keys:
            raise ValueError(f"the data has no {split} videos")
        members = [score_videos(model, bundle, keys) for _, model in models]
        predictions = {key: np.mean([member[key] for member in members], axis=0) for key in keys}
        return summary_report(predictions, bundle, split)

    def write_report(self, report, out, prefix):
        write_json(os.path.join(out, f"{prefix}_report.json"), report)

    def describe(self, report):
        return comparison_table(report)

    per_step_targets = True

    def export_gate(self):
        return MeanRankCorrelation()

    def predictor(self, model, record, options):
        return KeyframePredictor(model, record, options)


def load_frame_scores(options, config, seed, split_seed):
    """Builds the bundle for a frame-scoring model (see the module doc)."""
    mode = "frames" if config.reads_frames else "features"
    if options.dataset is not None:
        check_path(options.dataset, "--dataset")
        if mode == "frames" and options.videos is None:
            raise ValueError(
                f"--dataset {options.dataset} holds pre-extracted features; frames mode "
                "also needs the data set's videos (--videos FOLDER), or use --input-mode "
                "features"
            )
        if mode == "features" and options.videos is not None:
            raise ValueError("--videos is for frames mode (--input-mode frames)")
        videos = summarization.read_summary_file(options.dataset)
        reduction = summarization.default_reduction(options.dataset)
        source = f"--dataset {options.dataset}"
        if mode == "frames":
            check_path(options.videos, "--videos")
            inputs = frames_at_picks(
                videos, options.videos, tuple(config.input_shape[1:3]), options.frame_cache
            )
            info = {"data": os.path.abspath(options.dataset), "features": "frames",
                    "videos": os.path.abspath(options.videos),
                    "frame_size": list(config.input_shape[1:3])}
        else:
            inputs = {key: video.features for key, video in videos.items()}
            info = {"data": os.path.abspath(options.dataset), "features": "file"}
    else:
        if options.synthetic_videos < 5:
            raise ValueError(f"--synthetic-videos must be >= 5, got {options.synthetic_videos}")
        videos, inputs, info = synthetic_set(config, options.synthetic_videos, seed)
        reduction = "avg"
        source = "the synthetic set"
    benchmark = recognise_benchmark(videos) if options.dataset is not None else None
    if options.reduction != "auto":
        reduction = options.reduction

    keys = list(videos)
    if options.split_file is not None:
        check_path(options.split_file, "--split-file")
        splits = summarization.load_splits(options.split_file, keys)
        split_source = f"--split-file {options.split_file}"
    else:
        splits = summarization.make_splits(keys, seed=options.split_seed)
        split_source = f"the random splits of {source}"
        if options.write_splits:
            write_splits(splits, options.write_splits)
    split = summarization.select_split(splits, options.split, split_source)
    train_keys, val_keys = hold_out(split["train_keys"], options.val_fraction, split_seed)
    test_keys = list(split["test_keys"])

    input_name = "features" if mode == "features" else "frames"
    sample = next(iter(inputs.values()))
    input_shape = (None, *sample.shape[1:])

    def batches(split_keys, training, epoch=None):
        if not split_keys:
            return None
        return sequence_dataset(
            [inputs[key] for key in split_keys],
            None,
            [videos[key].gtscore for key in split_keys],
            config.batch_size,
            input_name=input_name,
            shuffle=training,
            seed=seed,
            source=source,
            epoch=epoch,
        )

    def train_epochs(first_epoch):
        return epoch_stream(lambda epoch: batches(train_keys, True, epoch), first_epoch)

    info.update(
        split=options.split,
        split_source=split_source,
        reduction=reduction,
        benchmark=benchmark,
        keys={"train": train_keys, "val": val_keys, "test": test_keys},
    )
    return SummaryBundle(
        train=batches(train_keys, True),
        val=batches(val_keys, False),
        test=batches(test_keys, False),
        class_names=[],
        config_updates={"input_shape": input_shape},
        info=info,
        videos=videos,
        inputs=inputs,
        input_name=input_name,
        keys={"train": train_keys, "val": val_keys, "test": test_keys},
        reduction=reduction,
        benchmark=benchmark,
        source=source,
        train_epochs=train_epochs if train_keys else None,
        steps_per_epoch=-(-len(train_keys) // config.batch_size),
    )


def frames_at_picks(videos, folder, size, cache):
    """key -> uint8 frames [n_picks, H, W, 3] of each video of a
    summarization file, read from its video file at the file's picks.

    The video file is the one in `folder` (searched recursively) whose name
    without extension is the video's key or its `video_name`. The picks
    index the frames the file's annotations were made on; a video file that
    decodes to another frame count (another encoding of the same video) is
    read at the picks scaled to its length. Each video's frames are read
    once into `cache` (a `.npy` per video, named by the video file, its
    size and date, the picks and the frame size) and memory-mapped after,
    so the frames of a whole data set need not fit in memory.
    """
    import hashlib


    files = {}
    for directory, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            stem, extension = os.path.splitext(name)
            if extension.lower() in VIDEO_EXTENSIONS:
                files.setdefault(stem, os.path.join(directory, name))
    os.makedirs(cache, exist_ok=True)
    frames = {}
    for key, video in videos.items():
        path = files.get(key) or files.get(video.video_name or "")
        if path is None:
            names = " or ".join(repr(n) for n in (key, video.video_name) if n)
            raise ValueError(
                f"--videos {folder}: no video file named {names} for video {key!r} of the file"
            )
        stat = os.stat(path)
        identity = json.dumps([os.path.abspath(path), stat.st_size, stat.st_mtime_ns,
                               video.picks.tolist(), video.n_frames, list(size)])
        cached = os.path.join(cache, f"frames-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.npy")
        if not os.path.exists(cached):
            count = probe_video(path, count_frames=True).frame_count
            picks = np.asarray(video.picks, np.int64)
            if count != video.n_frames:
                picks = np.round(picks * (count - 1) / max(video.n_frames - 1, 1)).astype(np.int64)
            picks = np.clip(picks, 0, count - 1)
            unique, where = np.unique(picks, return_inverse=True)
            read, _, _ = read_frames(path, unique, size)
            with atomic_path(cached) as temporary:
                np.save(temporary, read[where])
        frames[key] = np.load(cached, mmap_mode="r")
    return frames


def recognise_benchmark(videos):
    """`"tvsum"` or `"summe"` when `videos` are that public set, else None.

    The structure decides, not the file name: the set's number of videos
    and every video's number of user summaries (`SUMMARY_BENCHMARKS`). A
    renamed copy of the public file is still recognised; a file of other
    videos named `tvsum.h5`, or a subset of the public videos, is not, since
    the published numbers were measured on all of them.

    Args:
        videos: key -> `data.summarization.SummaryVideo`.

    Example:

    >>> from types import SimpleNamespace
    >>> video = SimpleNamespace(user_summary=np.zeros((20, 100)))
    >>> recognise_benchmark({f"video_{i}": video for i in range(50)})
    'tvsum'
    >>> recognise_benchmark({f"video_{i}": video for i in range(49)}) is None
    True
    """
    users = [int(np.shape(video.user_summary)[0]) for video in videos.values()]
    for name, (count, fewest, most) in SUMMARY_BENCHMARKS.items():
        if len(users) == count and all(fewest <= n <= most for n in users):
            return name
    return None


def write_splits(splits, path):
    """Saves the generated splits, never over a file that holds others (a
    resumed run finds its own splits there and leaves them)."""
    if os.path.exists(path):
        if os.path.isdir(path) or read_json(path, "split file") != splits:
            raise FileExistsError(
                f"--write-splits {path} already exists and holds other splits; "
                "choose another file"
            )
        return
    summarization.save_splits(splits, path)


def synthetic_set(config, count, seed):
    """The embedded videos as records and model inputs, plus what to record."""
    if not config.reads_frames:
        dim = config.input_shape[-1]
        videos = summarization.synthetic_summary_records(
            count, seed=seed, feature_dim=dim,
            height=SYNTHETIC_FEATURE_FRAME_SIZE[0], width=SYNTHETIC_FEATURE_FRAME_SIZE[1],
        )
        inputs = {key: video.features for key, video in videos.items()}
        info = {
            "data": "synthetic",
            "features": "synthetic_projection",
            "frame_size": list(SYNTHETIC_FEATURE_FRAME_SIZE),
            "feature_dim": dim,
        }
        return videos, inputs, info
    size = tuple(config.input_shape[1:3])
    videos, inputs = summarization.synthetic_summary_records(
        count, seed=seed, feature_dim=8, frames=(40, 80), height=size[0], width=size[1],
        return_frames=True,
    )
    return videos, inputs, {"data": "synthetic", "frame_size": list(size)}


def hold_out(keys, fraction, seed):
    """(train, val): a seeded `fraction` of `keys` (at least one) held out."""
    check_fraction(fraction, "--val-fraction", low_open=False)
    keys = list(keys)
    count = int(round(fraction * len(keys)))
    if fraction > 0 and len(keys) > 1:
        count = min(max(count, 1), len(keys) - 1)
    else:
        count = 0
    held = set(np.random.default_rng(seed).choice(len(keys), size=count, replace=False).tolist())
    return [k for i, k in enumerate(keys) if i not in held], [k for i, k in enumerate(keys) if i in held]


# --------------------------------------------------------------------------
# Scoring and the report.


def score_videos(model, bundle, keys, batch_size=None):
    """key -> predicted scores [n_picks].

    The videos are right-padded to the longest one of `keys` and scored in
    batches, so the model sees one input shape (a new shape per video would
    retrace the graph, which costs seconds with a frame backbone); padded
    steps do not change a real frame's score. Frames go one video at a time
    (a batch of whole videos of frames would not fit in memory), features
    eight at a time.
    """
    keys = list(keys)
    if not keys:
        return {}
    batch_size = batch_size or (1 if bundle.input_name == "frames" else 8)
    longest = max(len(bundle.inputs[key]) for key in keys)
    predictions = {}
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        sample = np.asarray(bundle.inputs[chunk[0]])
        values = np.zeros((len(chunk), longest, *sample.shape[1:]), dtype=np.float32)
        mask = np.zeros((len(chunk), longest), dtype=bool)
        for row, key in enumerate(chunk):
            length = len(bundle.inputs[key])
            values[row, :length] = bundle.inputs[key]
            mask[row, :length] = True
        scores = np.asarray(model.predict_on_batch({bundle.input_name: values, "mask": mask}))
        for row, key in enumerate(chunk):
            predictions[key] = scores[row, :mask[row].sum()]
    return predictions


# Why a report reduces the F-scores over users the way it does.
REDUCTION_WHY = {
    "avg": "F is the mean over the user summaries, as the public protocol scores TVSum "
           "(every user's summary counts)",
    "max": "F is the max over the user summaries, as the public protocol scores SumMe "
           "(the best-matching user)",
}


def summary_report(predictions, bundle, split="test"):
    """The protocol's numbers for one split, as JSON-able data."""
    keys = list(predictions)
    mean, per_video = summary_eval.evaluate_videos(
        predictions, {key: bundle.videos[key] for key in keys}, reduction=bundle.reduction
    )
    summary = {"videos": len(keys), "reduction": bundle.reduction, **mean}
    return {
        "kind": "frame_scores",
        "split": split,
        "summary": summary,
        "reduction_why": REDUCTION_WHY[bundle.reduction],
        "per_video": per_video,
        "baselines": summarization_baselines(
            {key: bundle.videos[key] for key in keys}, bundle.reduction),
        "benchmark": bundle.benchmark,
        "anchors": published_anchors(bundle.benchmark),
    }


def published_anchors(benchmark):
    """The published numbers measured on `benchmark` ({} for None)."""
    if benchmark is None:
        return {}
    anchors = {
        "published_fscores_percent": {
            name: scores[benchmark] for name, scores in summary_eval.PUBLISHED_FSCORES.items()
        },
        "published_correlations": {
            name: scores[benchmark]
            for name, scores in summary_eval.PUBLISHED_CORRELATIONS.items()
            if benchmark in scores
        },
    }
    if benchmark == "tvsum":
        anchors["human_agreement"] = summary_eval.HUMAN_AGREEMENT_TVSUM
    return anchors


def comparison_table(report):
    """Markdown rows: our numbers, beside the published anchors when the
    data is the set they were measured on (`recognise_benchmark`)."""
    s = report["summary"]
    column = report.get("benchmark")
    rows = [
        "| method | F-score (%) | Kendall tau | Spearman rho |",
        "|---|---:|---:|---:|",
        f"| ours ({s['videos']} videos, {s['reduction']}) | {100 * s['fscore']:.2f} "
        f"| {s['kendall_tau']:.3f} | {s['spearman_rho']:.3f} |",
    ]
    baselines = report.get("baselines") or {}
    if "random scores" in baselines:
        rows.append(f"| random scores, same shots ({baselines['random scores']['draws']} draws) "
                    f"| {100 * baselines['random scores']['fscore']:.2f} | | |")
        rows.append(f"| uniform intervals | {100 * baselines['uniform intervals']['fscore']:.2f} "
                    "| | |")
    human_here = baselines.get("human") or {}
    if human_here:
        cells = [f"{100 * human_here['fscore']:.2f}" if "fscore" in human_here else ""]
        cells += [f"{human_here[name]:.3f}" if name in human_here else ""
                  for name in ("kendall_tau", "spearman_rho")]
        rows.append("| users against each other, this data (leave one out) | " + " | ".join(cells) + " |")
    if report.get("reduction_why"):
        rows.append(f"\n{report['reduction_why']}.")
    if column is None:
        rows.append(
            "\nNo published anchors: they were measured on TVSum and SumMe, and this "
            "data is neither (see `recognise_benchmark`)."
        )
        return "\n".join(rows)
    anchors = published_anchors(column)
    human = anchors.get("human_agreement")
    if human:
        rows.append(f"| human annotators ({column}) | | {human['kendall_tau']:.3f} | {human['spearman_rho']:.3f} |")
    for name, fscore in anchors["published_fscores_percent"].items():
        corr = anchors["published_correlations"].get(name, {})
        tau = f"{corr['kendall_tau']:.3f}" if corr else ""
        rho = f"{corr['spearman_rho']:.3f}" if corr else ""
        rows.append(f"| {name} (published, {column}) | {fscore:.2f} | {tau} | {rho} |")
    return "\n".join(rows)

"""The "frame_scores" data source and the summarization report.

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
gets the rendered frames (64x64 unless `--input-shape` says otherwise).

The report (`summary_report`) follows the field's protocol
(`train.summary_eval`): keyshot F-score, averaged over user summaries for
TVSum and maximum for SumMe, Kendall's tau and Spearman's rho against each
annotator (Otani et al.), plus the design notes' metrics, and prints the
published anchors beside ours.
"""

import dataclasses
import os

import numpy as np

from train import summary_eval
from train.sources import DataBundle, Source, check_path, register_source

KIND = "frame_scores"
SYNTHETIC_FEATURE_FRAME_SIZE = (32, 32)
SYNTHETIC_CLIP_SIZE = (64, 64)


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
    """

    videos: dict = dataclasses.field(default_factory=dict)
    inputs: dict = dataclasses.field(default_factory=dict)
    input_name: str = "features"
    keys: dict = dataclasses.field(default_factory=dict)
    reduction: str = "avg"


# --------------------------------------------------------------------------
# The source.


def add_frame_score_arguments(group):
    group.add_argument(
        "--dataset", default=None,
        help="a summarization HDF5 file of the public schema (e.g. "
        "eccv16_dataset_tvsum_google_pool5.h5); without it, the embedded synthetic videos",
    )
    group.add_argument(
        "--split-file", default=None,
        help='JSON list of {"train_keys": [...], "test_keys": [...]}; without it, '
        "five random 80/20 splits from --split-seed",
    )
    group.add_argument("--split", type=int, default=0, help="which split of the list to train on")
    group.add_argument(
        "--split-seed", type=int, default=0,
        help="seed of the generated random splits (when no --split-file)",
    )
    group.add_argument(
        "--write-splits", default=None,
        help="save the generated splits to this JSON file (the public format)",
    )
    group.add_argument(
        "--val-fraction", type=float, default=0.15,
        help="share of the split's training videos held out to choose the best epoch",
    )
    group.add_argument(
        "--reduction", choices=("auto", "avg", "max"), default="auto",
        help="F-score over user summaries: avg (TVSum), max (SumMe); auto: max "
        "when the file name says summe",
    )
    group.add_argument(
        "--synthetic-videos", type=int, default=60,
        help="videos in the embedded synthetic set",
    )


def load_frame_scores(args, config, seed):
    """Builds the bundle for a frame-scoring model (see the module doc)."""
    from data import summarization

    mode = config.input_mode
    overridden = getattr(args, "overridden", set())
    if args.dataset is not None:
        check_path(args.dataset, "--dataset")
        if mode != "features":
            raise ValueError(
                f"--dataset {args.dataset} holds pre-extracted features, but input_mode "
                f"is {mode!r}; use --input-mode features (frames mode trains on the "
                "embedded synthetic videos)"
            )
        expected = config.input_shape[-1] if "input_shape" in overridden else None
        videos = summarization.read_summary_file(args.dataset, expected_dim=expected)
        inputs = {key: video.features for key, video in videos.items()}
        reduction = summarization.default_reduction(args.dataset)
        info = {"data": os.path.abspath(args.dataset), "features": "file"}
        source = f"--dataset {args.dataset}"
    else:
        if args.synthetic_videos < 5:
            raise ValueError(f"--synthetic-videos must be >= 5, got {args.synthetic_videos}")
        videos, inputs, info = synthetic_set(config, overridden, args.synthetic_videos, seed)
        reduction = "avg"
        source = "the synthetic set"
    if args.reduction != "auto":
        reduction = args.reduction

    keys = list(videos)
    if args.split_file is not None:
        check_path(args.split_file, "--split-file")
        splits = summarization.load_splits(args.split_file, keys)
        split_source = f"--split-file {args.split_file}"
    else:
        splits = summarization.make_splits(keys, seed=args.split_seed)
        split_source = f"the random splits of {source}"
        if args.write_splits:
            summarization.save_splits(splits, args.write_splits)
    split = summarization.select_split(splits, args.split, split_source)
    train_keys, val_keys = hold_out(split["train_keys"], args.val_fraction, seed)
    test_keys = list(split["test_keys"])

    input_name = "features" if mode == "features" else "frames"
    sample = next(iter(inputs.values()))
    input_shape = (None, *sample.shape[1:])

    def batches(split_keys, training):
        if not split_keys:
            return None
        return summarization.sequence_dataset(
            [inputs[key] for key in split_keys],
            [videos[key].gtscore for key in split_keys],
            input_name=input_name,
            batch_size=config.batch_size,
            shuffle=training,
            seed=seed,
        )

    info.update(
        split=args.split,
        split_source=split_source,
        reduction=reduction,
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
    )


def synthetic_set(config, overridden, count, seed):
    """The embedded videos as records and model inputs, plus what to record."""
    from data import summarization

    if config.input_mode == "features":
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
    if "input_shape" in overridden:
        size = tuple(config.input_shape[1:3])
    else:
        size = SYNTHETIC_CLIP_SIZE
    videos, inputs = summarization.synthetic_summary_records(
        count, seed=seed, feature_dim=8, frames=(40, 80), height=size[0], width=size[1],
        return_frames=True,
    )
    return videos, inputs, {"data": "synthetic", "frame_size": list(size)}


def hold_out(keys, fraction, seed):
    """(train, val): a seeded `fraction` of `keys` (at least one) held out."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"--val-fraction must be in [0, 1), got {fraction}")
    keys = list(keys)
    count = int(round(fraction * len(keys)))
    if fraction > 0 and len(keys) > 1:
        count = min(max(count, 1), len(keys) - 1)
    else:
        count = 0
    held = set(np.random.default_rng(seed).choice(len(keys), size=count, replace=False).tolist())
    return [k for i, k in enumerate(keys) if i not in held], [k for i, k in enumerate(keys) if i in held]


register_source(KIND, Source(add_frame_score_arguments, load_frame_scores))


# --------------------------------------------------------------------------
# Scoring and the report.


def score_videos(model, bundle, keys, batch_size=8):
    """key -> predicted scores [n_picks].

    The videos are right-padded to the longest one of `keys` and scored in
    batches, so the model sees one input shape (a new shape per video would
    retrace the graph, which costs seconds with a frame backbone); padded
    steps do not change a real frame's score.
    """
    keys = list(keys)
    if not keys:
        return {}
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


def summary_report(predictions, bundle, split="test"):
    """The protocol's numbers for one split, as JSON-able data."""
    keys = list(predictions)
    mean, per_video = summary_eval.evaluate_videos(
        predictions, {key: bundle.videos[key] for key in keys}, reduction=bundle.reduction
    )
    summary = {"videos": len(keys), "reduction": bundle.reduction, **mean}
    return {
        "kind": KIND,
        "split": split,
        "summary": summary,
        "per_video": per_video,
        "anchors": {
            "human_agreement_tvsum": summary_eval.HUMAN_AGREEMENT_TVSUM,
            "published_fscores_percent": summary_eval.PUBLISHED_FSCORES,
            "published_correlations": summary_eval.PUBLISHED_CORRELATIONS,
        },
    }


def comparison_table(report):
    """Markdown rows: our numbers beside the field's published anchors."""
    s = report["summary"]
    column = "summe" if s["reduction"] == "max" else "tvsum"
    rows = [
        "| method | F-score (%) | Kendall tau | Spearman rho |",
        "|---|---:|---:|---:|",
        f"| ours ({s['videos']} videos, {s['reduction']}) | {100 * s['fscore']:.2f} "
        f"| {s['kendall_tau']:.3f} | {s['spearman_rho']:.3f} |",
    ]
    if column == "tvsum":
        human = summary_eval.HUMAN_AGREEMENT_TVSUM
        rows.append(f"| human annotators (TVSum) | | {human['kendall_tau']:.3f} | {human['spearman_rho']:.3f} |")
    for name, scores in summary_eval.PUBLISHED_FSCORES.items():
        corr = summary_eval.PUBLISHED_CORRELATIONS.get(name, {}).get(column, {})
        tau = f"{corr['kendall_tau']:.3f}" if corr else ""
        rho = f"{corr['spearman_rho']:.3f}" if corr else ""
        rows.append(f"| {name} (published, {column}) | {scores[column]:.2f} | {tau} | {rho} |")
    return "\n".join(rows)


def write_report(report, out, prefix="test"):
    from train.callbacks import write_json

    write_json(os.path.join(out, f"{prefix}_report.json"), report)


def evaluate_model(model, data, out):
    """`train.evaluate.evaluate_model` for a frame-scoring run."""
    split = "test" if data.keys.get("test") else "val"
    if not data.keys.get(split):
        return {"summary": {}}
    report = summary_report(score_videos(model, data, data.keys[split]), data, split)
    write_report(report, out)
    print(comparison_table(report))
    return {"summary": {f"test_{k}": v for k, v in report["summary"].items()}}


def evaluate_runs(runs_and_models, data, split="test"):
    """Averages the scores of several runs (an ensemble) and reports."""
    keys = data.keys.get(split) or []
    if not keys:
        raise ValueError(f"the data has no {split} videos")
    members = [score_videos(model, data, keys) for _, model in runs_and_models]
    predictions = {key: np.mean([member[key] for member in members], axis=0) for key in keys}
    return summary_report(predictions, data, split)

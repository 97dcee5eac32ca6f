"""Checks of HDF5 files: feature files (`data.features`) and summarization
files (the public TVSum/SumMe schema, `data.summarization`).

The readers of those modules stop at the first problem; these checks read
the raw datasets and list every problem they find.

Feature files (a root dataset `features`):

- errors: marked incomplete; a dataset or attribute of the schema
  missing; datasets whose lengths disagree (`labels`, `num_frames`,
  `sources`, `splits` against the rows of `features`; `num_videos`,
  `max_frames`, `feature_dim` against its shape); `num_frames` outside
  1..T; labels outside `category_mapping`; rows holding NaN or Inf; rows
  whose real steps are all zero (a backbone never gives that; a failed
  decode written as zeros does); the same features or the same source
  video in two splits; a source lying in the folder of another class;
- warnings: non-zero padding after `num_frames`; videos extraction
  skipped; the same features twice in one split; the class balance
  findings of `data.check.videos`.

Summarization files (one group per video):

- errors: a field missing or not numeric; NaN or Inf; lengths that
  disagree (`gtscore` and `picks` against the rows of `features`,
  `n_frame_per_seg` against `change_points`, user summaries or scores
  against `n_frames`: a user summary longer or shorter than its video);
  picks not increasing inside the video; shots outside the video;
  feature widths that differ between videos;
- warnings: shots that leave frames uncovered or overlap; user summaries
  that are empty, not 0/1, or select more than `USER_BUDGET` of the frames
  (the protocol's knapsack budget, 15%: a machine summary of that budget
  cannot match a longer one; SumMe's users were asked for 5-15% and a few
  went over, so this is a warning, with the count per video); two videos
  with identical features.
"""

import collections
import hashlib
import json
import os

import h5py
import numpy as np

from common.tables import markdown_table
from data.check.findings import Findings
from data.check.report import Report, plural
from data.check.videos import (
    balance_findings, balance_plot, balance_text, class_balance, split_order,
)
from data.datasets import VideoDataset

USER_BUDGET = 0.15
BLOCK_ROWS = 256
# Rows named in one finding; the rest are counted.
NAMED_ROWS = 10
SUMMARY_FIELDS = ("features", "gtscore", "user_summary", "change_points",
                  "n_frame_per_seg", "n_frames", "picks")


def check_hdf5(path):
    """Checks a feature or summarization file; returns a `Report`."""
    findings = Findings()
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        findings.error("unreadable", f"{path}: not a readable HDF5 file ({error})", [path])
        return Report(str(path), "hdf5", "full", findings)
    with handle:
        if "features" in handle and isinstance(handle["features"], h5py.Dataset):
            return _check_feature_file(path, handle, findings)
        groups = [key for key in handle if isinstance(handle[key], h5py.Group)]
        if groups:
            return _check_summary_file(path, handle, findings)
    findings.error("unknown_schema", f"{path}: neither a feature file (a root dataset "
                   "'features') nor a summarization file (one group per video)", [path])
    return Report(str(path), "hdf5", "full", findings)


def _rows_text(rows):
    shown = ", ".join(str(int(r)) for r in rows[:NAMED_ROWS])
    return shown + (f" and {len(rows) - NAMED_ROWS} more" if len(rows) > NAMED_ROWS else "")


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------
# Feature files.


def _check_feature_file(path, file, findings):
    where = f"{path}:"
    complete = file.attrs.get("complete")
    if complete is not None and not bool(complete):
        findings.error("incomplete", f"{where} marked incomplete (an interrupted extraction); "
                       "re-run data.extract with the same arguments", [path])
    missing = [name for name in ("labels", "num_frames") if name not in file]
    missing += [f"attribute {name}" for name in ("num_videos", "max_frames", "feature_dim",
                                                 "category_mapping") if name not in file.attrs]
    if missing:
        findings.error("schema", f"{where} missing {', '.join(missing)}", [path])
    features = file["features"]
    if features.ndim != 3 or features.dtype.kind != "f":
        findings.error("schema", f"{where} 'features' must be float [N, T, D], got "
                       f"{features.dtype} {features.shape}", [path])
        return Report(str(path), "features", "full", findings)
    count, steps, dim = features.shape

    for name in ("labels", "num_frames", "sources", "splits", "video_index"):
        if name in file and file[name].shape[:1] != (count,):
            findings.error("lengths_disagree", f"{where} '{name}' has {file[name].shape[0]} rows "
                           f"but 'features' has {count}", [path])
    for name, value in (("num_videos", count), ("max_frames", steps), ("feature_dim", dim)):
        if name in file.attrs and int(file.attrs[name]) != value:
            findings.error("lengths_disagree", f"{where} attribute {name}={int(file.attrs[name])} "
                           f"but 'features' has {value}", [path])

    class_names = _class_names(file, findings, where)
    labels = _column(file, "labels", count, np.int64)
    num_frames = _column(file, "num_frames", count, np.int64)
    sources = _column(file, "sources", count, None)
    splits = _column(file, "splits", count, None)
    sources = [_text(s) for s in sources] if sources is not None else None
    splits = [_text(s) for s in splits] if splits is not None else None
    if splits is not None and not any(splits):
        splits = None

    if num_frames is not None:
        bad = np.flatnonzero((num_frames < 1) | (num_frames > steps))
        if bad.size:
            findings.error("lengths_disagree", f"{where} num_frames outside 1..{steps} in rows "
                           f"{_rows_text(bad)}", [path])
    if labels is not None and class_names is not None:
        bad = np.flatnonzero((labels < 0) | (labels >= len(class_names)))
        if bad.size:
            findings.error("bad_label", f"{where} labels outside the {len(class_names)} classes "
                           f"of category_mapping in rows {_rows_text(bad)}", [path])

    lengths = num_frames if num_frames is not None else np.full(count, steps)
    lengths = np.clip(lengths, 0, steps)
    rows = _scan_rows(features, lengths)
    if rows["non_finite"]:
        findings.error("nan_or_inf", f"{where} NaN or Inf in rows {_rows_text(rows['non_finite'])}"
                       + _named_sources(rows["non_finite"], sources), [path])
    if rows["all_zero"]:
        findings.error("all_zero_rows", f"{where} rows whose real steps are all zero (a failed "
                       f"decode?): {_rows_text(rows['all_zero'])}"
                       + _named_sources(rows["all_zero"], sources), [path])
    if rows["padding"]:
        findings.warning("padding_not_zero", f"{where} non-zero values after num_frames in rows "
                         f"{_rows_text(rows['padding'])}", [path])

    try:
        skipped = json.loads(_text(file.attrs.get("skipped", "[]")) or "[]")
    except ValueError:
        skipped = None
    if not isinstance(skipped, list) or not all(isinstance(e, dict) for e in skipped):
        findings.error("schema", f"{where} attribute 'skipped' is not a JSON list of "
                       "{\"path\", \"error\"} objects", [path])
        skipped = []
    if skipped:
        findings.warning("skipped_videos", f"{where} extraction skipped "
                         f"{plural(len(skipped), 'video')}: " + "; ".join(
                             f"{entry.get('path')} ({entry.get('error')})" for entry in skipped[:5])
                         + (" ..." if len(skipped) > 5 else ""), [path])

    _same_rows(rows["digests"], splits, sources, findings, where, path)
    balance = None
    if labels is not None and class_names is not None and not any(
            f.kind == "bad_label" for f in findings.items):
        dataset = VideoDataset(tuple(sources or [""] * count), tuple(int(v) for v in labels),
                               class_names, tuple(s or "unused" for s in splits) if splits else None)
        balance = class_balance(dataset)
        balance_findings(balance, dataset, findings)
        if sources is not None:
            _source_folder_findings(sources, labels, class_names, findings, path)

    overview = [f"feature file: {count} videos x {steps} steps x {dim} features"
                + (f", {len(class_names)} classes" if class_names else "")]
    sections, plots = [], {}
    if balance is not None:
        sections.append(("Class balance", balance_text(balance)
                         + "\n\n![class balance](class_balance.png)"))
        plots["class_balance.png"] = lambda plt: balance_plot(plt, balance)
    norms = rows["norms"]
    if len(norms):
        sections.append(("Features", markdown_table(
            [{"measure": "mean L2 norm of a step", "min": float(np.min(norms)),
              "median": float(np.median(norms)), "max": float(np.max(norms))},
             {"measure": "real steps", "min": float(lengths.min()),
              "median": float(np.median(lengths)), "max": float(lengths.max())}],
            ["measure", "min", "median", "max"]) + "\n\n![features](features.png)"))
        plots["features.png"] = lambda plt: _two_histograms(
            plt, (norms, "mean L2 norm of a step", "videos"),
            (lengths, "real steps (num_frames)", None), bins=30)
    return Report(str(path), "features", "full", findings, overview=overview, sections=sections,
                  plots=plots, data={"videos": count, "max_frames": steps, "feature_dim": dim,
                                     "class_balance": balance,
                                     "class_names": list(class_names or [])})


def _class_names(file, findings, where):
    if "category_mapping" not in file.attrs:
        return None
    try:
        mapping = json.loads(_text(file.attrs["category_mapping"]))
        if isinstance(mapping, list):
            return tuple(str(name) for name in mapping)
        if all(isinstance(v, int) for v in mapping.values()):
            return tuple(name for name, _ in sorted(mapping.items(), key=lambda item: item[1]))
        return tuple(str(mapping[key]) for key in sorted(mapping, key=int))
    except (TypeError, ValueError, AttributeError):
        findings.error("schema", f"{where} attribute category_mapping is not a JSON map of "
                       "class name -> id", [where.rstrip(":")])
        return None


def _column(file, name, count, dtype):
    if name not in file or file[name].shape[:1] != (count,):
        return None
    values = file[name][()]
    return values.astype(dtype) if dtype is not None else list(values)


def _scan_rows(features, lengths):
    """Reads the rows in blocks: non-finite rows, all-zero rows, rows with
    non-zero padding, a digest of every row's real steps and the mean L2
    norm of every finite row's steps."""
    found = {"non_finite": [], "all_zero": [], "padding": [], "digests": [], "norms": []}
    for start in range(0, features.shape[0], BLOCK_ROWS):
        block = np.asarray(features[start:start + BLOCK_ROWS], np.float32)
        for offset, row in enumerate(block):
            index = start + offset
            real = row[:int(lengths[index])]
            finite = bool(np.isfinite(row).all())
            if not finite:
                found["non_finite"].append(index)
            elif real.size and not real.any():
                found["all_zero"].append(index)
            if finite and real.size:
                found["norms"].append(float(np.linalg.norm(real, axis=1).mean()))
            if row[int(lengths[index]):].any():
                found["padding"].append(index)
            found["digests"].append(hashlib.sha256(np.ascontiguousarray(real).tobytes()).hexdigest()
                                    if finite and real.size and real.any() else None)
    return found


def _named_sources(rows, sources):
    if not sources:
        return ""
    return " (" + ", ".join(sources[r] for r in rows[:3]) + (", ..." if len(rows) > 3 else "") + ")"


def _same_rows(digests, splits, sources, findings, where, path):
    """The same features (or the same source video) in two rows."""
    for what, keys in (("features", digests), ("source video", sources)):
        if keys is None:
            continue
        rows = collections.defaultdict(list)
        for index, key in enumerate(keys):
            if key:
                rows[key].append(index)
        for members in rows.values():
            if len(members) < 2:
                continue
            in_splits = sorted({splits[i] for i in members if splits and splits[i] in
                                ("train", "val", "test")}, key=split_order)
            listed = ", ".join(f"row {i}" + (f" ({splits[i]})" if splits else "") for i in members)
            if len(in_splits) > 1:
                findings.error("duplicate_across_splits", f"{where} the same {what} in splits "
                               f"{', '.join(in_splits)}: {listed}", [path])
            else:
                findings.warning("duplicate_rows", f"{where} the same {what} in {listed}", [path])


def _source_folder_findings(sources, labels, class_names, findings, path):
    names = set(class_names)
    for index, (source, label) in enumerate(zip(sources, labels)):
        folder = os.path.basename(os.path.dirname(source))
        if 0 <= label < len(class_names) and folder in names and folder != class_names[label]:
            findings.error("label_disagrees_with_folder", f"{path}: row {index} ({source}) is "
                           f"labelled {class_names[label]!r} but its video lies in the folder of "
                           f"class {folder!r}", [path])


def _two_histograms(plt, left, right, bins, marker=None):
    """Two histograms side by side; each of `left` and `right` is (values,
    x label, y label); `marker` (x, label) draws a dashed line on the right."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for axis, (values, xlabel, ylabel), colour in zip(axes, (left, right),
                                                      ("tab:blue", "tab:green")):
        axis.hist(values, bins=bins, color=colour)
        axis.set_xlabel(xlabel)
        if ylabel:
            axis.set_ylabel(ylabel)
    if marker is not None:
        axes[1].axvline(marker[0], color="tab:red", linestyle="--", label=marker[1])
        axes[1].legend(fontsize=8)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------
# Summarization files.


def _check_summary_file(path, file, findings):
    videos = {}
    widths = {}
    digests = collections.defaultdict(list)
    for key in file:
        group = file[key]
        if not isinstance(group, h5py.Group):
            findings.error("schema", f"{path}: {key!r} is a dataset; expected one group per video",
                           [path])
            continue
        checked = _check_summary_video(f"{path}: video {key!r}", group, findings, path)
        if checked is None:
            continue
        videos[key] = checked
        widths.setdefault(checked["feature_dim"], []).append(key)
        if checked.get("digest"):
            digests[checked["digest"]].append(key)
    if len(widths) > 1:
        findings.error("feature_widths_differ", f"{path}: feature widths differ between videos: "
                       + "; ".join(f"{dim}-d: {', '.join(keys[:5])}" for dim, keys in widths.items()),
                       [path])
    for keys in digests.values():
        if len(keys) > 1:
            findings.warning("duplicate_videos", f"{path}: videos {', '.join(keys)} have identical "
                             "features", [path])
    fractions = [f for video in videos.values() for f in video["user_fractions"]]
    frames = [video["n_frames"] for video in videos.values()]
    overview = [f"summarization file: {plural(len(list(file)), 'video')}"]
    sections, plots = [], {}
    if videos:
        rows = [{"video": key, "frames": v["n_frames"], "picks": v["n_picks"],
                 "shots": v["shots"], "users": len(v["user_fractions"]),
                 "user summary %": round(100 * float(np.mean(v["user_fractions"])), 1)
                 if v["user_fractions"] else ""}
                for key, v in videos.items()]
        sections.append(("Videos", markdown_table(rows, list(rows[0]))
                         + "\n\n![summaries](summaries.png)"))
        plots["summaries.png"] = lambda plt: _two_histograms(
            plt, (frames, "frames per video", "videos"),
            (fractions, "share of frames in a user summary", "user summaries"), bins=20,
            marker=(USER_BUDGET, "protocol budget"))
    return Report(str(path), "summaries", "full", findings, overview=overview, sections=sections,
                  plots=plots, data={"videos": videos})


def _check_summary_video(where, group, findings, path):
    missing = [name for name in SUMMARY_FIELDS if name not in group]
    if missing:
        findings.error("schema", f"{where} has no field {', '.join(map(repr, missing))}", [path])
        return None
    values = {}
    for name in (*SUMMARY_FIELDS, "user_scores"):
        if name not in group:
            continue
        item = group[name]
        value = np.asarray(item[()]) if isinstance(item, h5py.Dataset) else None
        if value is None or value.dtype.kind not in "iufb":
            findings.error("schema", f"{where}: field {name!r} must be a numeric dataset", [path])
            return None
        values[name] = value
    bad_values = [name for name in ("features", "gtscore", "user_summary", "user_scores",
                                    "picks", "change_points", "n_frames")
                  if name in values and not np.isfinite(values[name].astype(np.float64)).all()]
    if bad_values:
        findings.error("nan_or_inf", f"{where}: NaN or Inf in {', '.join(bad_values)}", [path])
    features = values["features"]
    if features.ndim != 2:
        findings.error("schema", f"{where}: 'features' must be [n_picks, D], got shape "
                       f"{features.shape}", [path])
        return None
    n_picks, dim = features.shape
    n_frames = values["n_frames"].reshape(-1)
    if n_frames.size != 1 or not np.isfinite(n_frames[0]) or n_frames[0] < 1:
        findings.error("schema", f"{where}: 'n_frames' must be one positive integer, got "
                       f"{n_frames.tolist()}", [path])
        return None
    n_frames = int(n_frames[0])

    def disagree(message):
        findings.error("lengths_disagree", f"{where}: {message}", [path])

    gtscore, picks = values["gtscore"].reshape(-1), values["picks"].reshape(-1)
    if gtscore.size != n_picks:
        disagree(f"'gtscore' has {gtscore.size} scores but 'features' has {n_picks} rows")
    if picks.size != n_picks:
        disagree(f"'picks' has {picks.size} frames but 'features' has {n_picks} rows")
    elif n_picks and np.isfinite(picks).all() and (
            np.any(np.diff(picks) <= 0) or picks[0] < 0 or picks[-1] >= n_frames):
        disagree(f"'picks' must be increasing frame indices in [0, {n_frames})")

    change_points = values["change_points"]
    per_segment = values["n_frame_per_seg"].reshape(-1)
    shots = 0
    if change_points.ndim != 2 or change_points.shape[1:] != (2,):
        disagree(f"'change_points' must be [n_segs, 2], got shape {change_points.shape}")
    elif np.isfinite(change_points).all():
        shots = len(change_points)
        if per_segment.size != shots:
            disagree(f"'n_frame_per_seg' has {per_segment.size} entries but 'change_points' "
                     f"has {shots} shots")
        elif np.any(change_points[:, 1] - change_points[:, 0] + 1 != per_segment):
            disagree("'n_frame_per_seg' differs from the frames of 'change_points' "
                     "(last - first + 1)")
        if shots and (change_points.min() < 0 or change_points.max() >= n_frames):
            findings.error("shots_outside_video", f"{where}: 'change_points' reach outside "
                           f"frames 0..{n_frames - 1}", [path])
        elif shots and (change_points[0, 0] != 0 or change_points[-1, 1] != n_frames - 1
                        or np.any(change_points[1:, 0] != change_points[:-1, 1] + 1)):
            findings.warning("shots_gaps", f"{where}: the shots of 'change_points' leave frames "
                             "uncovered or overlap", [path])

    fractions = _user_summary_findings(where, values, n_frames, findings, path)
    finite = np.isfinite(features).all()
    return {
        "n_frames": n_frames, "n_picks": int(n_picks), "feature_dim": int(dim),
        "shots": int(shots), "user_fractions": fractions,
        "digest": hashlib.sha256(np.ascontiguousarray(features).tobytes()).hexdigest()
        if finite and features.size else None,
    }


def _user_summary_findings(where, values, n_frames, findings, path):
    """Checks user summaries (and scores) against the video; returns the
    share of frames each user summary selects."""
    summary = values["user_summary"]
    if summary.ndim != 2:
        findings.error("schema", f"{where}: 'user_summary' must be [n_users, n_frames], got "
                       f"shape {summary.shape}", [path])
        return []
    if summary.shape[1] != n_frames:
        longer = "longer" if summary.shape[1] > n_frames else "shorter"
        findings.error("user_summary_length", f"{where}: user summaries cover {summary.shape[1]} "
                       f"frames, {longer} than the video's {n_frames}", [path])
    if "user_scores" in values and values["user_scores"].ndim == 2 and \
            values["user_scores"].shape[1] != n_frames:
        findings.error("user_summary_length", f"{where}: user scores cover "
                       f"{values['user_scores'].shape[1]} frames, the video {n_frames}", [path])
    summary = summary.astype(np.float64)
    if not np.isfinite(summary).all() or not summary.shape[1]:
        return []
    if not np.isin(summary, (0.0, 1.0)).all():
        findings.warning("user_summary_values", f"{where}: user summaries hold values other "
                         "than 0 and 1", [path])
    fractions = (summary > 0).mean(axis=1)
    empty = int(np.sum(fractions == 0))
    if empty:
        findings.warning("empty_user_summary", f"{where}: {empty} of {len(fractions)} user "
                         "summaries select no frame (their F-score is 0 whatever the model does)",
                         [path])
    over = fractions > USER_BUDGET + 0.5 / max(n_frames, 1)
    if over.any():
        findings.warning("user_summary_over_budget", f"{where}: {int(over.sum())} of "
                         f"{len(fractions)} user summaries select more than "
                         f"{USER_BUDGET:.0%} of the frames (up to {fractions.max():.0%}); "
                         "a summary of the protocol's budget cannot match them", [path])
    return [round(float(f), 4) for f in fractions]


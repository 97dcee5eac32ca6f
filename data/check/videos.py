"""Checks of a video collection: a class-per-folder tree (with optional
HMDB51/UCF101 split lists) or a CSV manifest, as `data.datasets` reads them.

What is checked, and how bad each finding is:

- every file, opened in a child process (`data.check.probe`): unreadable,
  zero-length, not a video, no decodable frame, truncated (more than 5%
  short of its header), a decoder that crashes or hangs: errors;
- statistics over the readable files: duration, frame rate, frame size
  and colour channels (tables and plots); a file without a frame rate, a
  video under `SHORT_SECONDS` or frames under `SMALL_SIDE` pixels:
  warnings;
- class balance per split: a class with no training video while other
  splits have it: an error (it cannot be learned); a class missing from
  the test split, a class of a single video, or a largest class more than
  `IMBALANCE` times the smallest: warnings;
- duplicates (full check only): the same bytes (SHA-256), or the same
  picture (`near_duplicates`: fingerprints of `HASH_FRAMES` frames within
  `NEAR_BITS` bits, mean grey levels within `NEAR_GREY` and durations
  within `NEAR_DURATION`), under two names. Across two splits (train, val,
  test) it is an error: the test measures memory. The same bytes under
  two labels is an error; any other duplicate is a warning;
- labels against folders: in a manifest, a video labelled A in a folder
  named after another class B is an error; with UCF101 lists, a
  `classInd.txt` whose numbers disagree with the listed class folder is
  an error.

A data set that `data.datasets.scan_dataset` refuses (a manifest naming a
missing file, a bad split list) is one error with its message: training
would stop on it.
"""

import collections
import os
import re

import numpy as np

from common.tables import markdown_table
from data import datasets
from data.check.findings import Findings
from data.check.probe import HASH_FRAMES, HASH_SIZE, probe_videos
from data.check.report import Report, plural

SHORT_SECONDS = 0.5
SMALL_SIDE = 32
IMBALANCE = 10.0
# Near-duplicate thresholds: fingerprint bits that may differ (of
# HASH_FRAMES x 64), mean grey level difference per frame, and duration
# difference as a fraction of the longer video (or 0.5 s, whichever is more).
NEAR_BITS = 24
NEAR_GREY = 12.0
NEAR_DURATION = 0.1
# A video is grey when its pixels' channels differ by less than this on
# average (0..255; a codec adds a few levels of chroma noise to grey video:
# 3 on a grey MPEG-4 clip of noise, against 38-40 for the same in colour).
GREY_COLOURFULNESS = 4.0
TRAINING_SPLITS = ("train", "val", "test")


def check_videos(source, split_dir=None, split=1, full=True, jobs=2, timeout=120.0,
                 progress=None):
    """Checks a video collection (see the module docstring).

    Args:
        source: a class-per-folder tree or a CSV manifest.
        split_dir, split: HMDB51/UCF101 split lists for a tree.
        full: decode every frame, hash files and fingerprint frames; False
            reads headers and first frames only (no duplicate search).
        jobs, timeout: child processes at once, and seconds per file.
        progress: `number of videos -> function(path, result)`, called as
            each file is done; None for none.

    Returns:
        A `data.check.report.Report`.
    """
    findings = Findings()
    mode = "full" if full else "quick"
    try:
        dataset = datasets.scan_dataset(source, split_dir=split_dir, split=split)
    except ValueError as error:
        findings.error("unreadable_dataset", f"the data set cannot be read for training: {error}")
        return Report(str(source), "videos", mode, findings,
                      overview=["the data set could not be listed, so no video was opened"])

    on_result = progress(len(dataset.paths)) if progress is not None else None
    results = _probe(dataset.paths, full, jobs, timeout, on_result)
    records = [
        {"path": path, "label": dataset.class_names[label],
         "split": dataset.splits[i] if dataset.splits else None, **result}
        for i, (path, label, result) in enumerate(zip(dataset.paths, dataset.labels, results))
    ]
    _file_findings(records, findings)
    _statistics_findings(records, findings)
    balance = class_balance(dataset)
    balance_findings(balance, dataset, findings)
    _label_findings(source, dataset, split_dir, split, findings)
    groups = []
    if full:
        groups = duplicate_groups(records)
        _duplicate_findings(groups, findings)

    readable = [r for r in records if r["ok"]]
    overview = [
        f"{plural(len(records), 'video')} in {plural(dataset.num_classes, 'class')}"
        + (f", split {split} of the lists in {split_dir}" if split_dir else ""),
        f"{len(readable)} readable, {len(records) - len(readable)} not",
    ]
    if not full:
        overview.append("quick check: headers and first frames only; no truncation or "
                        "duplicate search (run without --quick for those)")
    sections = [("Videos", _statistics_text(readable)),
                ("Class balance", balance_text(balance) + "\n\n![class balance](class_balance.png)")]
    if full:
        sections.append(("Duplicates", _duplicates_text(groups)))
    plots = {"class_balance.png": lambda plt: balance_plot(plt, balance)}
    if readable:
        plots["videos.png"] = lambda plt: _statistics_plot(plt, readable)
        sections[0] = ("Videos", sections[0][1] + "\n\n![videos](videos.png)")
    return Report(
        str(source), "videos", mode, findings, overview=overview, sections=sections, plots=plots,
        data={"class_names": list(dataset.class_names), "videos": records,
              "class_balance": balance, "duplicates": groups,
              "statistics": statistics(readable)},
    )


def _probe(paths, full, jobs, timeout, on_result):
    """Zero-length files are reported without a child; the rest are probed."""
    results = [None] * len(paths)
    opened = []
    for index, path in enumerate(paths):
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            results[index] = {"ok": False, "problem": "empty file (0 bytes)"}
            if on_result is not None:
                on_result(path, results[index])
        else:
            opened.append(index)
    probed = probe_videos([paths[i] for i in opened], full=full, jobs=jobs, timeout=timeout,
                          on_result=on_result)
    for index, result in zip(opened, probed):
        results[index] = result
    return results


def _file_findings(records, findings):
    for record in records:
        if record["ok"]:
            continue
        problem = record["problem"]
        if record.get("crashed"):
            kind = "decoder_crash"
        elif record.get("timed_out"):
            kind = "decoder_timeout"
        elif problem.startswith("empty file"):
            kind = "zero_length"
        elif problem.startswith("truncated"):
            kind = "truncated"
        else:
            kind = "unreadable"
        findings.error(kind, f"{record['path']}: {problem}", [record["path"]])


def statistics(records):
    """Summary statistics of the readable videos' durations, frame rates,
    sizes and channels (min, median, max; distinct values where few)."""
    if not records:
        return {}

    def spread(values):
        values = np.asarray(values, np.float64)
        return {"min": float(values.min()), "median": float(np.median(values)),
                "max": float(values.max())}

    sizes = collections.Counter(f"{r['width']}x{r['height']}" for r in records)
    result = {
        "duration_seconds": spread([r["duration"] for r in records]),
        "fps": spread([r["fps"] for r in records]),
        "frame_sizes": dict(sizes.most_common()),
        "channels": dict(collections.Counter(str(r.get("channels")) for r in records)),
    }
    means = [r["channel_mean"] for r in records if "channel_mean" in r]
    if means:
        means = np.asarray(means)
        result["channel_mean_rgb"] = np.round(means.mean(axis=0), 2).tolist()
        result["greyscale_videos"] = sum(
            r.get("colourfulness", np.inf) < GREY_COLOURFULNESS for r in records)
    return result


def _statistics_findings(records, findings):
    for record in records:
        if not record["ok"]:
            continue
        path = record["path"]
        if record["fps"] <= 0:
            findings.warning("no_frame_rate", f"{path}: the file gives no frame rate", [path])
        elif record["duration"] < SHORT_SECONDS:
            findings.warning("very_short", f"{path}: lasts {record['duration']:g} s "
                             f"(under {SHORT_SECONDS:g} s)", [path])
        if min(record["width"], record["height"]) < SMALL_SIDE:
            findings.warning("small_frames", f"{path}: frames of {record['width']}x"
                             f"{record['height']} (a side under {SMALL_SIDE} pixels)", [path])


def _statistics_text(records):
    if not records:
        return "No readable video."
    stats = statistics(records)
    rows = [{"measure": name.replace("_", " "), **values}
            for name, values in stats.items() if name in ("duration_seconds", "fps")]
    text = markdown_table(rows, ["measure", "min", "median", "max"])
    sizes = ", ".join(f"{size} ({count})" for size, count in list(stats["frame_sizes"].items())[:8])
    text += f"\n\nFrame sizes (videos): {sizes}" + (" ..." if len(stats["frame_sizes"]) > 8 else "")
    text += "\n\nChannels decoded (videos): " + ", ".join(
        f"{channels} ({count})" for channels, count in stats["channels"].items())
    if "channel_mean_rgb" in stats:
        text += (f"\n\nMean R, G, B over the fingerprint frames: {stats['channel_mean_rgb']}; "
                 f"{stats['greyscale_videos']} of {len(records)} videos are grey (R = G = B).")
    return text


def _statistics_plot(plt, records):
    """Durations, frame rates, frame sizes and (full check) per-video mean
    of each colour channel."""
    means = np.asarray([r["channel_mean"] for r in records if "channel_mean" in r])
    figure, axes = plt.subplots(1, 4 if len(means) else 3, figsize=(15 if len(means) else 12, 3.2))
    axes[0].hist([r["duration"] for r in records], bins=30, color="tab:blue")
    axes[0].set_xlabel("duration (s)")
    axes[0].set_ylabel("videos")
    axes[1].hist([r["fps"] for r in records], bins=30, color="tab:green")
    axes[1].set_xlabel("frames per second")
    axes[2].scatter([r["width"] for r in records], [r["height"] for r in records], s=12,
                    alpha=0.5, color="tab:purple")
    axes[2].set_xlabel("width (px)")
    axes[2].set_ylabel("height (px)")
    if len(means):
        for channel, colour in enumerate(("tab:red", "tab:green", "tab:blue")):
            axes[3].hist(means[:, channel], bins=30, range=(0, 255), color=colour, alpha=0.5,
                         label="RGB"[channel])
        axes[3].set_xlabel("mean channel value")
        axes[3].legend(fontsize=8)
    figure.tight_layout()
    return figure


def class_balance(dataset):
    """{class name: {split: videos}} ("all" when the data set has no splits).

    Example:

    >>> data = datasets.VideoDataset(("a", "b", "c"), (0, 1, 1), ("jump", "run"),
    ...                              ("train", "train", "test"))
    >>> class_balance(data)
    {'jump': {'train': 1}, 'run': {'train': 1, 'test': 1}}
    """
    balance = {name: {} for name in dataset.class_names}
    for index, label in enumerate(dataset.labels):
        split = dataset.splits[index] if dataset.splits else "all"
        counts = balance[dataset.class_names[label]]
        counts[split] = counts.get(split, 0) + 1
    return balance


def balance_findings(balance, dataset, findings):
    splits = sorted({s for counts in balance.values() for s in counts}, key=split_order)
    for name, counts in balance.items():
        used = {s: n for s, n in counts.items() if s != "unused"}
        if "train" in splits and not used.get("train") and used:
            findings.error("class_without_training", f"class {name!r} has no training video "
                           f"({_counts_text(counts)}): the model cannot learn it")
        if "test" in splits and not used.get("test") and used.get("train"):
            findings.warning("class_without_test", f"class {name!r} has no test video "
                             f"({_counts_text(counts)}): it is never evaluated")
        if sum(used.values()) == 1:
            findings.warning("one_video_class", f"class {name!r} has a single video "
                             f"({_counts_text(counts)}): too few to learn it and to test it")
    totals = {name: sum(n for s, n in counts.items() if s != "unused")
              for name, counts in balance.items()}
    present = [n for n in totals.values() if n > 0]
    if len(present) > 1 and max(present) >= IMBALANCE * min(present):
        largest = max(totals, key=totals.get)
        smallest = min((n for n in totals if totals[n] > 0), key=totals.get)
        findings.warning("class_imbalance", f"class {largest!r} has {totals[largest]} videos, "
                         f"{totals[largest] / totals[smallest]:.0f} times class {smallest!r} "
                         f"({totals[smallest]}); consider class weights")


def split_order(split):
    order = ("train", "val", "test", "unused", "all")
    return order.index(split) if split in order else len(order)


def _counts_text(counts):
    ordered = sorted(counts.items(), key=lambda item: split_order(item[0]))
    return ", ".join(f"{split} {n}" for split, n in ordered)


def balance_text(balance):
    splits = sorted({s for counts in balance.values() for s in counts}, key=split_order)
    rows = [{"class": name, **{s: counts.get(s, 0) for s in splits}}
            for name, counts in balance.items()]
    return markdown_table(rows, ["class", *splits])


def balance_plot(plt, balance):
    names = list(balance)
    splits = sorted({s for counts in balance.values() for s in counts}, key=split_order)
    figure, axis = plt.subplots(figsize=(max(4.0, 0.35 * len(names) + 2), 3.4))
    bottom = np.zeros(len(names))
    for split in splits:
        values = np.asarray([balance[name].get(split, 0) for name in names], np.float64)
        axis.bar(range(len(names)), values, bottom=bottom, label=split)
        bottom += values
    axis.set_xticks(range(len(names)))
    axis.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("videos")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _hash_bits(record):
    return np.unpackbits(np.frombuffer(bytes.fromhex(record["hash"]), np.uint8))


def near_duplicates(records, bits=NEAR_BITS, grey=NEAR_GREY, duration=NEAR_DURATION):
    """Pairs (i, j), i < j, of records that show the same picture: their
    fingerprints differ in at most `bits` bits, their frames' mean grey
    levels by at most `grey` on average, and their durations by at most
    `duration` of the longer one (or 0.5 s). Records without a fingerprint
    are left out. The comparison is all pairs, in blocks of rows.

    Example:

    >>> one = {"hash": "00" * 31 + "0f", "grey": [50.0] * 4, "duration": 2.0}
    >>> near = dict(one, hash="00" * 32)                # 4 bits differ
    >>> other = dict(one, grey=[200.0] * 4)             # a brighter picture
    >>> near_duplicates([one, near, other])
    [(0, 1)]
    """
    indices = [i for i, r in enumerate(records) if r.get("hash")]
    if len(indices) < 2:
        return []
    fingerprints = np.stack([_hash_bits(records[i]) for i in indices]).astype(bool)
    greys = np.asarray([records[i]["grey"] for i in indices], np.float64)
    durations = np.asarray([records[i].get("duration", 0.0) for i in indices], np.float64)
    pairs = []
    for start in range(0, len(indices), 256):
        block = fingerprints[start:start + 256]
        distance = (block[:, None, :] != fingerprints[None, :, :]).sum(axis=2)
        grey_gap = np.abs(greys[start:start + 256, None, :] - greys[None, :, :]).mean(axis=2)
        longer = np.maximum(durations[start:start + 256, None], durations[None, :])
        time_gap = np.abs(durations[start:start + 256, None] - durations[None, :])
        close = (distance <= bits) & (grey_gap <= grey) & (
            time_gap <= np.maximum(0.5, duration * longer))
        for row, column in zip(*np.nonzero(close)):
            i, j = start + int(row), int(column)
            if i < j:
                pairs.append((indices[i], indices[j]))
    return pairs


def duplicate_groups(records):
    """Groups of two or more videos that are the same file content
    ("exact") or the same picture ("near"), each as {"kind", "videos":
    [{"path", "label", "split"}]}."""
    groups = []
    by_digest = collections.defaultdict(list)
    for index, record in enumerate(records):
        if record.get("sha256"):
            by_digest[record["sha256"]].append(index)
    exact = [members for members in by_digest.values() if len(members) > 1]
    in_exact = {i for members in exact for i in members}
    groups += [("exact", members) for members in exact]

    # Near pairs joined into groups (union-find), leaving out pairs that are
    # already one exact group.
    parent = {}

    def root(i):
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    for i, j in near_duplicates(records):
        if i in in_exact and j in in_exact and records[i]["sha256"] == records[j]["sha256"]:
            continue
        parent[root(i)] = root(j)
    near = collections.defaultdict(list)
    for i in parent:
        near[root(i)].append(i)
    for members in near.values():
        members = sorted(set(members) | {root(members[0])})
        if len(members) > 1:
            groups.append(("near", members))
    return [
        {"kind": kind, "videos": [
            {"path": records[i]["path"], "label": records[i]["label"], "split": records[i]["split"]}
            for i in members
        ]}
        for kind, members in groups
    ]


def _duplicate_findings(groups, findings):
    for group in groups:
        videos = group["videos"]
        paths = [v["path"] for v in videos]
        splits = {v["split"] for v in videos if v["split"] in TRAINING_SPLITS}
        labels = {v["label"] for v in videos}
        what = "the same file" if group["kind"] == "exact" else "the same picture (near duplicates)"
        listed = "; ".join(f"{v['path']} ({v['label']}" + (f", {v['split']})" if v["split"] else ")")
                           for v in videos)
        if len(splits) > 1:
            named = ", ".join(sorted(splits, key=split_order))
            findings.error("duplicate_across_splits", f"{what} in splits {named}: {listed}; "
                           "the test would measure memory", paths)
        elif group["kind"] == "exact" and len(labels) > 1:
            findings.error("duplicate_other_label", f"{what} under labels "
                           f"{', '.join(sorted(labels))}: {listed}", paths)
        else:
            findings.warning(f"{group['kind']}_duplicate", f"{what}: {listed}", paths)


def _duplicates_text(groups):
    if not groups:
        return (f"No two videos are the same file or the same picture (fingerprints of "
                f"{HASH_FRAMES} frames, {HASH_SIZE}x{HASH_SIZE} average hashes).")
    lines = [f"{plural(len(groups), 'group')} of duplicates:", ""]
    for group in groups:
        lines.append(f"- {group['kind']}: " + "; ".join(
            f"{v['path']} ({v['label']}, {v['split'] or 'no split'})" for v in group["videos"]))
    return "\n".join(lines)


def _label_findings(source, dataset, split_dir, split, findings):
    names = set(dataset.class_names)
    if os.path.isfile(os.fspath(source)):  # a manifest: its labels are not its folders
        for path, label in zip(dataset.paths, dataset.labels):
            folder = os.path.basename(os.path.dirname(path))
            labelled = dataset.class_names[label]
            if folder in names and folder != labelled:
                findings.error("label_disagrees_with_folder", f"{path}: labelled {labelled!r} "
                               f"but it lies in the folder of class {folder!r}", [path])
    if split_dir is not None:
        _ucf_index_findings(split_dir, split, findings)


def _ucf_index_findings(split_dir, split, findings):
    """UCF101 `trainlistNN.txt` lines `<class>/<video> <index>` against the
    numbering of `classInd.txt`, when both are there."""
    index_file = os.path.join(split_dir, "classInd.txt")
    train_list = os.path.join(split_dir, f"trainlist{split:02d}.txt")
    if not (os.path.isfile(index_file) and os.path.isfile(train_list)):
        return
    numbers = {}
    with open(index_file, encoding="utf-8") as file:
        for line in file:
            fields = line.split()
            if len(fields) == 2 and fields[0].isdigit():
                numbers[fields[0]] = fields[1]
    with open(train_list, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            fields = line.split()
            if len(fields) != 2:
                continue
            folder = re.split(r"[\\/]", fields[0])[0]
            named = numbers.get(fields[1])
            if named is not None and named != folder:
                findings.error("label_disagrees_with_folder", f"{train_list}, line {number}: "
                               f"{fields[0]} is numbered {fields[1]} ({named} in classInd.txt) "
                               f"but lies in the folder of class {folder!r}", [train_list])

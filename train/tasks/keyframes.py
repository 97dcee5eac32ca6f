"""A video summary from a trained frame-scoring run (keyframe_transformer).

`KeyframePredictor(model, record, options)(video, out)` does, in order:

1. Decodes the video once (`data.stream.FrameStream`). Every frame is kept,
   at most 360 pixels on its short side, as JPEG in a temporary spool (for
   the summary video, rendered once the shots are chosen); the frames at
   `sample_rate` per second (the design notes' 2 fps: frame
   round(k * fps / 2) for k = 0, 1, ...) become the model's input, encoded
   `ENCODE_BATCH` at a time as the video decodes, and an HSV histogram each.
2. Scores the sampled frames. The model takes any length (a padding mask,
   sinusoidal positions); a video of more than `MAX_STEPS` samples (1024
   features, 8.5 minutes at 2 fps; 128 frames in frames mode, where every
   frame goes through the backbone in one batch) is scored in windows of
   that length, overlapping by half, the scores of overlapping windows
   averaged. Each window is scored as soon as its samples are decoded
   (`WindowScorer`), and only the inputs a later window needs are kept, so
   memory stays flat over an hour-long video (7200 samples at 2 fps would
   be 4.3 GB as 224x224 float frames).
3. Cuts shots with KTS (`data.shots.segment_change_points`: change points
   of the histograms; exact up to 6 minutes, on overlapping blocks beyond,
   at a cost linear in the length).
4. Chooses the summary's pieces (`select_keyshots`) with the protocol's
   pieces (`train.metrics.summarization`): the sample scores spread over the
   frames (`upsample_to_frames`) and the 0/1 `knapsack` with a budget of
   floor(ratio * frames) frames. The protocol's own choice (a knapsack of
   whole shots valued by their mean score) scores a model; a summary a
   person watches needs more, so here: every KTS shot is cut into pieces
   of `piece` frames, a fifth of the budget but never under
   `MIN_PIECE_SECONDS` (1 s) unless the budget itself is shorter; the
   knapsack values a piece by its summed score (mean x length), so it
   fills the budget rather than preferring short pieces; the chosen pieces
   then grow, frame by frame towards the better-scored neighbour, within
   their shot, into the budget left over, and a further piece is added
   while a whole one still fits. A piece never crosses a shot boundary and
   pieces of one shot that touch become one. A summary shorter than 80% of
   its budget says why in the result's notes (the video's shots hold fewer
   frames in pieces of at least a second).
5. Writes, into `out`: `summary.mp4` (the chosen shots at the source frame
   rate, VP9 in MP4, which browsers play; OpenCV's FFmpeg here has no H.264
   encoder, and VP9 encodes slowly, hence the 360-pixel short side),
   `keyshots.json` (`shots`: start and end in seconds and score of every
   chosen shot; `segments`: every KTS shot), `scores.png` (importance over
   time, shot boundaries drawn and chosen shots shaded), `keyframes/` (the
   best-scored frame of every chosen shot) and `contact_sheet.png` (those
   keyframes, captioned).

How frames become the model's input, as the run's training data was made:

- frames-mode runs take the sampled frames resized to the model's size;
- features-mode runs trained on the embedded synthetic set use the same
  projection features (`data.summarization.frame_features`) at the frame
  size recorded in the run;
- features-mode runs trained on a feature file need the backbone that made
  those features (`--backbone`, `--backbone-weights`); its feature size must
  match the model's. The public TVSum/SumMe files hold GoogLeNet features,
  which no keras.applications backbone reproduces.
"""

import math
import os

import cv2
import numpy as np

from common.files import pyplot, save_figure, write_json
from data import shots as shot_lib
from data import summarization
from data.features import FrameFeatureExtractor
from data.stream import FrameStream, bgr, rgb, short_side_size
from train.metrics import summarization as summary_eval
from train.serving import explain
from train.serving.media import write_browser_video
from train.serving.prediction import (
    FrameSpool, SpooledFrames, flat_scores_note, report_progress, seconds, trained_on, video_fps,
    watch, write_image,
)
from train.tasks.base import run_config

SUMMARY_SHORT_SIDE = 360
THUMBNAIL_WIDTH = 240
MAX_STEPS = {"features": 1024, "frames": 128}
# Sampled frames encoded (frames mode: converted; features mode: through
# the backbone) at a time while the video decodes.
ENCODE_BATCH = 32
# A piece is a fifth of the budget (so the budget fills to 80% or more
# with whole pieces), but never under MIN_PIECE_SECONDS unless the budget is.
PIECES_PER_BUDGET = 5
MIN_PIECE_SECONDS = 1.0


class FrameEncoder:
    """Sampled RGB frames -> the model's per-step input.

    Attributes:
        name: the model input it fills, "features" or "frames".
        size: (height, width) the frames are read at.
    """

    def __init__(self, name, size, encode):
        self.name = name
        self.size = tuple(int(s) for s in size)
        self._encode = encode

    def __call__(self, frames):
        return self._encode(np.asarray(frames))


def frame_encoder(record, config, options):
    """The `FrameEncoder` that makes the run's training input from frames."""
    data = record.get("data", {})
    if (config.reads_frames or data.get("features") == "synthetic_projection") and (
            options.backbone is not None or options.backbone_weights is not None):
        flag = "--backbone" if options.backbone is not None else "--backbone-weights"
        value = options.backbone if options.backbone is not None else options.backbone_weights
        raise ValueError(
            f"{flag} {value}: this run "
            + ("reads frames itself" if config.reads_frames else
               "was trained on the embedded data's own frame features")
            + "; leave --backbone and --backbone-weights out"
        )
    if config.reads_frames:
        return FrameEncoder("frames", config.input_shape[1:3], lambda f: f.astype(np.float32))
    if data.get("features") == "synthetic_projection":
        dim = config.input_shape[-1]
        return FrameEncoder(
            "features", data["frame_size"],
            lambda f: summarization.frame_features(f, feature_dim=dim),
        )
    if options.backbone is None:
        raise ValueError(
            f"--run {options.run} was trained on features from {data.get('data', 'a file')}; "
            "give --backbone (and --backbone-weights) of the extractor that made them"
        )

    weights = options.backbone_weights or "imagenet"
    extractor = FrameFeatureExtractor(
        options.backbone, weights=None if weights == "none" else weights, size=(224, 224)
    )
    if extractor.feature_dim != config.input_shape[-1]:
        raise ValueError(
            f"--backbone {options.backbone} gives {extractor.feature_dim}-d features but the "
            f"model expects {config.input_shape[-1]}-d features"
        )
    return FrameEncoder("features", extractor.size, extractor.frame_features)


def sample_positions(fps, sample_rate):
    """Yields the frame indices sampled at `sample_rate` per second:
    round(k * fps / sample_rate), each index once (every frame when the
    video has fewer frames per second than `sample_rate`).

    Example:

    >>> positions = sample_positions(25.0, 2.0)
    >>> [next(positions) for _ in range(5)]
    [0, 12, 25, 38, 50]
    """
    step = fps / sample_rate
    k, last = 0, -1
    while True:
        index = int(round(k * step))
        k += 1
        if index > last:
            last = index
            yield index


class WindowScorer:
    """Per-step values of one video's inputs that arrive a few at a time,
    in half-overlapping windows of at most `max_steps` steps whose
    overlapping values are averaged: the windows of `score_in_windows`,
    each scored as soon as its last input is in. Only the parts holding
    inputs from the last scored window's start on are kept (fewer than
    `max_steps` plus half of it, plus one added part), so memory does not
    grow with the video.

    Args:
        per_step: functions of one window's batch of inputs (`{name: [1,
            steps, ...], "mask": [1, steps]}`) to [1, steps] values (the
            model's scores; an explanation).
        name: the model input the values fill.
        max_steps: the longest window.

    Example:

    >>> def totals(inputs):
    ...     return inputs["features"].sum(axis=2)
    >>> scorer = WindowScorer([totals], "features", max_steps=4)
    >>> for part in np.arange(12.0).reshape(6, 2, 1):
    ...     scorer.add(part)
    >>> scorer.finish()[0].tolist() == list(range(12))
    True
    """

    def __init__(self, per_step, name, max_steps):
        self.per_step = list(per_step)
        self.name = name
        self.max_steps = int(max_steps)
        self.stride = max(1, self.max_steps // 2)
        self._parts = []      # (index of the first input, inputs [m, ...]), in order
        self._count = 0       # inputs added
        self._next = 0        # start of the next full window
        self._last = None     # start of the last scored window
        self._scored = []     # (start, [values of each function])

    def add(self, values):
        """Adds the next inputs [m, ...] and scores every window they complete."""
        values = np.asarray(values)
        if not len(values):
            return
        self._parts.append((self._count, values))
        self._count += len(values)
        while self._next + self.max_steps <= self._count:
            self._score(self._next, self._next + self.max_steps)
            self._next += self.stride
        # Every later window, and a last one ending at the last input,
        # starts at or after the last scored window's start.
        keep = self._last if self._last is not None else 0
        while self._parts and self._parts[0][0] + len(self._parts[0][1]) <= keep:
            self._parts.pop(0)

    def held(self):
        """Inputs held now (for tests)."""
        return sum(len(part) for _, part in self._parts)

    def _window(self, start, stop):
        pieces = [part[max(0, start - first):stop - first] for first, part in self._parts
                  if first < stop and first + len(part) > start]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _score(self, start, stop):
        part = self._window(start, stop)
        inputs = {self.name: part[None], "mask": np.ones((1, len(part)), dtype=bool)}
        self._scored.append((start, [np.asarray(f(inputs), dtype=np.float64)[0, :len(part)]
                                     for f in self.per_step]))
        self._last = start

    def finish(self):
        """The values of every function over all inputs, [n] each: one
        window over all of a video of at most `max_steps` inputs, else
        the windows every half window plus one ending at the last input."""
        n = self._count
        if n == 0:
            raise ValueError("no inputs to score")
        if self._last is None:
            self._score(0, n)
        elif self._last != n - self.max_steps:
            self._score(n - self.max_steps, n)
        results = []
        for position in range(len(self.per_step)):
            total, count = np.zeros(n), np.zeros(n)
            for start, values in self._scored:
                total[start:start + len(values[position])] += values[position]
                count[start:start + len(values[position])] += 1
            results.append(total / count)
        return results


def score_in_windows(model, values, name, max_steps, per_step=None):
    """Scores [n] of one video's inputs [n, ...], in half-overlapping windows
    of at most `max_steps` steps whose overlapping scores are averaged
    (`WindowScorer` given all inputs at once).

    `per_step`, when given, replaces the model's scores: a function of one
    window's batch of inputs to [1, steps] values (an explanation)."""
    scorer = WindowScorer([per_step or model.predict_on_batch], name, max_steps)
    scorer.add(values)
    return scorer.finish()[0]


def best_part(frame_scores, start, end, length):
    """The `length`-frame window of frames [start, end] (inclusive) with the
    highest mean score, earliest on ties, as (first, last) inclusive.

    Example:

    >>> best_part(np.array([0, 1, 5, 5, 1, 0, 9.0]), 0, 5, 2)
    (2, 3)
    """
    if end - start + 1 <= length:
        return start, end
    values = np.asarray(frame_scores[start:end + 1], dtype=np.float64)
    sums = np.convolve(values, np.ones(length), mode="valid")
    first = start + int(np.argmax(sums))
    return first, first + length - 1


def cut_into_pieces(change_points, piece, shortest):
    """Consecutive pieces of `piece` frames of every shot, as [P, 2] (first,
    last) inclusive, with each piece's shot index [P]. A shot's remainder
    joins its last piece (a shot shorter than `piece` is one piece); a
    shot shorter than `shortest` frames offers none.

    Example:

    >>> pieces, shots = cut_into_pieces(np.array([[0, 9], [10, 12], [13, 30]]), 4, 4)
    >>> pieces.tolist(), shots.tolist()
    ([[0, 3], [4, 9], [13, 16], [17, 20], [21, 24], [25, 30]], [0, 0, 2, 2, 2, 2])
    """
    pieces, owners = [], []
    for index, (first, last) in enumerate(np.asarray(change_points, np.int64)):
        length = int(last - first + 1)
        if length < shortest:
            continue
        count = max(1, length // piece)
        starts = [int(first) + k * piece for k in range(count)]
        ends = [start - 1 for start in starts[1:]] + [int(last)]
        pieces += [[start, end] for start, end in zip(starts, ends)]
        owners += [index] * count
    return np.asarray(pieces, np.int64).reshape(-1, 2), np.asarray(owners, np.int64)


def grow_pieces(frame_scores, chosen, bounds, extra):
    """Grows the chosen pieces into `extra` more frames, one frame at a
    time: of every piece's free neighbour frames (inside its shot, not in
    another piece), the best-scored one joins its piece.

    Args:
        frame_scores: [n_frames] scores.
        chosen: list of [first, last] (inclusive), changed in place.
        bounds: per piece, its shot's (first, last).
        extra: frames to add at most.

    Returns:
        the frames added.
    """
    taken = np.zeros(len(frame_scores), bool)
    for first, last in chosen:
        taken[first:last + 1] = True
    added = 0
    while added < extra:
        best = None
        for index, (first, last) in enumerate(chosen):
            low, high = bounds[index]
            for frame, side in ((first - 1, 0), (last + 1, 1)):
                if low <= frame <= high and not taken[frame]:
                    if best is None or frame_scores[frame] > best[0]:
                        best = (frame_scores[frame], index, side, frame)
        if best is None:
            break
        _, index, side, frame = best
        chosen[index][side] = frame
        taken[frame] = True
        added += 1
    return added


def merge_touching(chosen, owners):
    """Pieces of one shot that touch become one piece, in frame order."""
    merged, merged_owners = [], []
    for (first, last), owner in sorted(zip(map(tuple, chosen), owners)):
        if merged and merged_owners[-1] == owner and first == merged[-1][1] + 1:
            merged[-1][1] = last
        else:
            merged.append([first, last])
            merged_owners.append(owner)
    return merged


def select_keyshots(scores, picks, n_frames, change_points, ratio, shortest=1):
    """Chooses the summary's pieces (see the module doc, step 4).

    Args:
        scores: [n] scores of the sampled frames.
        picks: [n] their frame indices.
        n_frames: frames in the video.
        change_points: [S, 2] KTS shots, first and last frame, inclusive.
        ratio: the summary's share of the frames.
        shortest: the shortest piece in frames (about a second), unless
            the budget is shorter.

    Returns:
        (frame scores [n_frames], the chosen pieces [P, 2] in frame order,
        their mean scores [P], budget in frames, a note saying why the
        summary holds under 80% of its budget, or None).

    Raises:
        ValueError: the budget is less than one frame.

    Example:

    >>> scores = [0.9, 0.1, 0.5, 0.8]
    >>> shots = np.array([[0, 9], [10, 19], [20, 29], [30, 39]])
    >>> _, pieces, values, budget, note = select_keyshots(scores, [0, 10, 20, 30], 40, shots, 0.5)
    >>> budget, pieces.tolist(), note
    (20, [[0, 9], [30, 39]], None)
    """
    n_frames = int(n_frames)
    budget = int(math.floor(ratio * n_frames))
    if budget < 1:
        needed = 1.0 / max(n_frames, 1)
        if needed >= 1.0:
            raise ValueError(
                f"a {n_frames}-frame video is too short to summarize: a summary of less than "
                "the whole video needs at least 2 frames"
            )
        smallest = math.ceil(needed * 1000) / 1000  # in (0, 1) for 2 or more frames
        raise ValueError(
            f"--ratio {ratio} of a {n_frames}-frame video is less than one frame; "
            f"use a --ratio of at least {smallest:g} (and below 1); the video needs at least "
            f"{math.ceil(1 / ratio)} frames at this ratio"
        )
    frame_scores = summary_eval.upsample_to_frames(scores, picks, n_frames)
    shortest = max(1, min(int(shortest), budget))
    piece = max(shortest, budget // PIECES_PER_BUDGET)
    pieces, owners = cut_into_pieces(change_points, piece, shortest)
    if not len(pieces):  # every shot is shorter than a piece: offer them whole
        pieces, owners = cut_into_pieces(change_points, piece, 1)
    # A piece longer than the whole budget offers its best part of that length.
    pieces = np.asarray([best_part(frame_scores, int(first), int(last), budget)
                         for first, last in pieces], np.int64).reshape(-1, 2)
    lengths = pieces[:, 1] - pieces[:, 0] + 1
    means = summary_eval.shot_scores(frame_scores, pieces)
    chosen_rows = summary_eval.knapsack(means * lengths, lengths, budget)
    chosen = [list(map(int, pieces[i])) for i in chosen_rows]
    chosen_owners = [int(owners[i]) for i in chosen_rows]
    used = int(sum(last - first + 1 for first, last in chosen))
    while used < budget:
        bounds = [tuple(map(int, change_points[owner])) for owner in chosen_owners]
        used += grow_pieces(frame_scores, chosen, bounds, budget - used)
        left = [i for i in range(len(pieces)) if not any(
            first <= pieces[i][1] and pieces[i][0] <= last for first, last in chosen)]
        room = budget - used
        if room < shortest or not left:
            break
        best = max(left, key=lambda i: means[i])
        first = int(pieces[best][0])
        chosen.append([first, first + min(room, int(lengths[best])) - 1])
        chosen_owners.append(int(owners[best]))
        used = int(sum(last - first + 1 for first, last in chosen))
    chosen = np.asarray(merge_touching(chosen, chosen_owners), np.int64).reshape(-1, 2)
    values = summary_eval.shot_scores(frame_scores, chosen) if len(chosen) else np.zeros(0)
    note = None
    if used < 0.8 * budget:
        note = (f"the summary holds {used} of the {budget} frames asked for: the video's "
                f"shots of at least {shortest} frames hold no more pieces")
    return frame_scores, chosen, values, budget, note


class KeyframePredictor:
    """Scores and summarizes videos with one frame-scoring run.

    Args:
        model: the run's Keras model.
        record: the run's `config.json`.
        options: `train.serving.prediction.PredictOptions`.
    """

    def __init__(self, model, record, options):
        self.model = model
        self.record = record
        self.options = options
        config = run_config(record)
        self.encoder = frame_encoder(record, config, options)
        self.max_steps = MAX_STEPS[self.encoder.name]
        self.explainer = None
        if options.explain:
            self.explainer = explain.explainer_for(model, record)

    def __call__(self, video, out):
        options = self.options
        stream = FrameStream(video)
        fps, fps_note = video_fps(stream)
        summary_size = short_side_size(stream.info.height, stream.info.width, SUMMARY_SHORT_SIDE)
        positions = sample_positions(fps, options.sample_rate)
        next_pick = next(positions)
        # Scores (and the explanation) are computed window by window as the
        # samples arrive, so no array of every sample's input is ever held.
        per_step = [self.model.predict_on_batch]
        if self.explainer is not None:
            per_step.append(self.explainer)
        scorer = WindowScorer(per_step, self.encoder.name, self.max_steps)
        picks, waiting, histograms = [], [], []
        with FrameSpool() as spool:

            def spooled(index, frame):  # in the decoding thread: every frame's part
                small = bgr(frame, summary_size)  # BGR, as JPEG and the writer take it
                return small, spool.encode(small)

            for index, frame, (small, jpeg) in watch(stream, fps, options, video, spooled):
                spool.append_encoded(jpeg)
                if index == next_pick:
                    picks.append(index)
                    waiting.append(rgb(frame, self.encoder.size))
                    histograms.append(shot_lib.hsv_histogram(small, bgr=True))
                    next_pick = next(positions)
                    if len(waiting) == ENCODE_BATCH:
                        scorer.add(self.encoder(np.stack(waiting)))
                        waiting.clear()
            if waiting:
                scorer.add(self.encoder(np.stack(waiting)))
            n_frames = stream.info.frame_count
            picks = np.asarray(picks, dtype=np.int64)
            outputs = scorer.finish()
            scores = outputs[0]
            report_progress("finding shots and choosing the summary")
            change_points, _ = shot_lib.shots_from_change_points(
                shot_lib.segment_change_points(np.stack(histograms)), picks, n_frames
            )
            frame_scores, pieces, values, budget, short_note = select_keyshots(
                scores, picks, n_frames, change_points, options.ratio,
                shortest=round(MIN_PIECE_SECONDS * fps),
            )
            result = self._write(
                video, out, spool, fps, fps_note, n_frames, picks, scores, frame_scores,
                change_points, pieces, values, budget, short_note,
            )
            if self.explainer is not None:
                report_progress("writing the explanation")
                self._explain(video, out, spool, fps, picks, outputs[1], result)
            return result

    def model_inputs(self, video):
        """What the run's exported model takes for `video`: its frames
        sampled at `sample_rate` per second, made into the run's input
        (`features` or `frames`, as training made them) with a `mask`, a
        batch of one. The `serving_default` signature of the run's export
        returns the same scores as `train.predict` from them."""
        stream = FrameStream(video)
        fps, _ = video_fps(stream)
        positions = sample_positions(fps, self.options.sample_rate)
        next_pick, frames = next(positions), []
        for index, frame in stream:
            if index == next_pick:
                frames.append(rgb(frame, self.encoder.size))
                next_pick = next(positions)
        values = np.asarray(self.encoder(np.stack(frames)), np.float32)[None]
        return {self.encoder.name: values, "mask": np.ones(values.shape[:2], bool)}

    def _explain(self, video, out, spool, fps, picks, attention, result):
        """Writes the attention curve over the sampled frames (computed in
        the scores' windows, overlaps averaged) and adds it to the result
        (and `result.json`); the frames are read back from the spool as the
        explanation video is written."""
        files, summary, notes = explain.write_explanation(
            out, self.explainer, SpooledFrames(spool, picks), [seconds(i, fps) for i in picks],
            attention,
            title=f"{os.path.basename(video)}: {self.explainer.method}",
            extra={"frames": picks.tolist()},
        )
        result["files"].update(files)
        result["explanation"] = summary
        result["sections"].append("explanation")
        result["notes"].extend(notes)
        write_json(result["files"]["result"], result)

    def _write(self, video, out, spool, fps, fps_note, n_frames, picks, scores, frame_scores,
               change_points, pieces, values, budget, short_note):
        described, trained_note = trained_on(self.record)
        notes = [note for note in (fps_note, trained_note, flat_scores_note(scores), short_note)
                 if note]
        files = {
            "summary_video": os.path.join(out, "summary.mp4"),
            "keyshots": os.path.join(out, "keyshots.json"),
            "score_plot": os.path.join(out, "scores.png"),
            "contact_sheet": os.path.join(out, "contact_sheet.png"),
            "result": os.path.join(out, "result.json"),
        }
        chosen_shots = [(int(first), int(last), float(value))
                        for (first, last), value in zip(pieces, values)]
        summary_frames = [f for first, last, _ in chosen_shots for f in range(first, last + 1)]

        def rgb_frames():
            for number, frame in enumerate(summary_frames, 1):
                report_progress("writing the summary video", number, len(summary_frames))
                yield cv2.cvtColor(spool[frame], cv2.COLOR_BGR2RGB)

        codec, note = write_browser_video(files["summary_video"], rgb_frames, fps, what="summary")
        if note:
            notes.append(note)

        report_progress("writing the keyframes and the score plot")
        os.makedirs(os.path.join(out, "keyframes"), exist_ok=True)
        keyframes = []
        for number, (first, last, _) in enumerate(chosen_shots, 1):
            frame = first + int(np.argmax(frame_scores[first:last + 1]))
            image = os.path.join(out, "keyframes", f"keyframe_{number:02d}.jpg")
            write_image(image, spool[frame])
            keyframes.append({
                "frame": frame, "time": seconds(frame, fps),
                "score": round(float(frame_scores[frame]), 4), "image": image,
            })
        write_contact_sheet(spool, keyframes, os.path.basename(video), files["contact_sheet"])
        write_score_plot(picks, scores, fps, n_frames, change_points, pieces,
                         files["score_plot"], title=os.path.basename(video))

        duration = n_frames / fps
        keyshots = {
            "video": os.path.abspath(video),
            "fps": fps,
            "frame_count": n_frames,
            "duration": round(duration, 3),
            "ratio": self.options.ratio,
            "budget_frames": budget,
            "shots": [
                {"start": seconds(first, fps), "end": seconds(last + 1, fps),
                 "score": round(score, 4), "frames": [first, last]}
                for first, last, score in chosen_shots
            ],
            "segments": [
                {"start": seconds(first, fps), "end": seconds(last + 1, fps),
                 "frames": [int(first), int(last)]}
                for first, last in change_points
            ],
            "samples": {"frames": picks.tolist(), "scores": np.round(scores, 4).tolist()},
        }
        write_json(files["keyshots"], keyshots)
        result = {
            "video": os.path.abspath(video),
            "run": os.path.abspath(self.options.run) if self.options.run else None,
            "model": self.record["model"],
            "trained_on": described,
            "fps": fps,
            "frame_count": n_frames,
            "duration": round(duration, 3),
            "sample_rate": self.options.sample_rate,
            "frames_scored": int(len(picks)),
            "ratio": self.options.ratio,
            "shots_found": int(len(change_points)),
            "summary_seconds": round(len(summary_frames) / fps, 3),
            "summary_codec": codec,
            "shots": keyshots["shots"],
            "keyframes": keyframes,
            "files": files,
            "notes": notes,
            "sections": ["summary_video", "keyframes", "curve"],
        }
        write_json(files["result"], result)
        return result


def write_contact_sheet(spool, keyframes, title, path):
    """A grid of the keyframes at a readable size, captioned."""
    plt = pyplot()
    images = [spool[k["frame"]][..., ::-1] for k in keyframes]
    height, width = images[0].shape[:2] if images else (THUMBNAIL_WIDTH * 9 // 16, THUMBNAIL_WIDTH)
    columns = max(1, min(5, len(images)))
    rows = max(1, math.ceil(len(images) / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, rows * (2.6 * height / width + 0.45) + 0.3),
        squeeze=False,
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axis, image, keyframe in zip(axes.ravel(), images, keyframes):
        axis.imshow(image)
        axis.set_title(f"#{keyframe['frame']}  {keyframe['time']:.2f}s  {keyframe['score']:.2f}",
                       fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def write_score_plot(picks, scores, fps, n_frames, change_points, chosen, path, title=None):
    """Importance over time, shot boundaries drawn, chosen shots shaded;
    `title` (e.g. the video's name) above it."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 3))
    for number, (first, last) in enumerate(chosen):
        axis.axvspan(first / fps, (last + 1) / fps, color="tab:orange", alpha=0.3, linewidth=0,
                     label="chosen shots" if number == 0 else None)
    for number, first in enumerate(change_points[1:, 0]):
        axis.axvline(first / fps, color="gray", linestyle="--", linewidth=0.8,
                     label="shot boundaries" if number == 0 else None)
    axis.plot(np.asarray(picks) / fps, scores, color="tab:blue", linewidth=1.2,
              marker="o", markersize=2.5, label="importance")
    axis.set_xlim(0, n_frames / fps)
    axis.set_ylim(0, 1)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("score")
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, fontsize=8, frameon=False)
    if title:
        axis.set_title(title, fontsize=9, pad=22)
    figure.tight_layout()
    save_figure(figure, path)

"""End-to-end CPU latency of every model in every export format.

    python -m benchmarks.latency [--models keyframe_transformer,...]
        [--formats keras,litert,litert-int8,onnx] [--threads 1,2]
        [--decoders opencv,pyav] [--overlap-batch 6] [--repeats 5]
        [--video FILE] [--cache DIR]

For each model, format and thread count, the median of `--repeats` rounds
(formats and decoders alternate within a round, so a change in the
machine's load hits them alike) of:

- model only: the model on one clip already in memory;
- end to end, per decoder: one video file in, the model's output out:
  decode, sample, resize to the model's frames, then the model;
- overlapped, per decoder (models over per-frame backbone features): the
  same video, decoded in a second thread, the sampled frames going
  through the backbone in batches of `--overlap-batch` as soon as they
  are out, and the temporal head run on the features once the last frame
  is in; the model stops waiting for the decoder.

Before those, decoding only: the keyframe samples (60 frames at 224x224)
decoded by each decoder, with the frames and packets it decoded.

Each also has its CPU time (seconds of CPU the process used in that call,
all its threads together, median of the rounds): on a shared machine the
wall time includes waiting for a core, the CPU time does not, so it tells
what a quiet machine would take (about CPU time / threads when the threads
are kept busy). Every row has the load average it was measured at.

The video is the design notes' input for keyframe scoring: 30 s of
1280x720 at 25 fps, written once into `--cache` in H.264 by PyAV's
libx264 (x264's default settings, a keyframe every second as phone cameras
write; x264 chooses no B-frames for this noisy content), or with OpenCV's
MPEG-4 Part 2 encoder where libx264 is missing; `--video` takes your own
file. Keyframe scoring samples it at 2 frames per second (60 frames); the
clip classifiers sample their own frame count uniformly over it, as
training does. The decoders (`data.video`): OpenCV reads the file once in
order and converts only the sampled frames (`grab` every frame,
`retrieve` the sampled ones); PyAV (`data.av_decoder`) decodes only the
stretches from the keyframe before each sampled frame, skipping frames
nothing refers to, with FFmpeg's threads. Both give the same pixels.

Models are built at their `benchmark` preset sizes with random weights
(nothing is downloaded; latency does not depend on the weights). `convlstm`
takes RGB video frames here (3 channels instead of the notes' 4), since a
video has three. Formats: `keras` is the Keras model traced as one
TensorFlow graph (what TF Serving runs); the others are converted by
`train.formats` (cached in `--cache`), int8 calibrated on random
clips: the int8 rows are latency only, not verified (a trained run's int8
export is verified by `train.export`). Models over backbone features
(`keyframe_transformer` in frames mode, `bilstm_attention` on
EfficientNet-B0 features of 224x224 frames) run as two files, the
per-frame backbone and the temporal head, in every format.

TensorFlow fixes its thread pools when it starts, so each thread count runs
in its own child process; `--threads` sets the runtimes' threads and both
decoders' threads.

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

from benchmarks.timing import load_average, machine_description, timed
from common.cli import ArgumentParser
from common.files import atomic_path

# "keras" is the Keras model itself traced as one TensorFlow graph (no
# export); the others are the export formats of `train.formats`.
KERAS_ROW = "keras"
FORMATS = (KERAS_ROW, "litert", "litert-int8", "onnx")
DECODERS = ("opencv", "pyav")
DEFAULT_CACHE = os.path.join("runs", ".cache", "latency")
VIDEO_SECONDS, VIDEO_FPS, VIDEO_SIZE = 30, 25.0, (720, 1280)
KEYFRAME_SAMPLING_FPS = 2.0


def cases():
    """`{model name: LatencyCase}` of every registered family that declares
    one (`models.capabilities.LatencyCase`)."""
    import models  # see the module doc: imported when needed

    return {name: models.get_family(name).latency for name in models.names()
            if models.get_family(name).latency is not None}


def refuses(name, format_name):
    """Whether the family `name` does not export to `format_name`."""
    import models  # see the module doc: imported when needed

    return format_name in models.get_family(name).export_refusals


# ---------------------------------------------------------------------------
# The video.


# x264's defaults but for the keyframe interval: one a second, as phone
# cameras write (x264's own default is 250 frames).
H264_OPTIONS = {"g": str(int(VIDEO_FPS))}


def h264_encoder():
    """The name of an H.264 encoder PyAV's FFmpeg has, or None."""
    import av

    for name in ("libx264", "h264"):
        try:
            av.codec.Codec(name, "w")
            return name
        except av.codec.codec.UnknownCodecError:
            continue
    return None


def benchmark_video_path(cache):
    """Where the benchmark video lives in `cache`: H.264 when an encoder is
    there to write it, else MPEG-4 Part 2."""
    name = "720p_30s_h264.mp4" if h264_encoder() else "720p_30s_mp4v.mp4"
    return os.path.join(cache, name)


def write_benchmark_video(path, seconds=VIDEO_SECONDS, fps=VIDEO_FPS, size=VIDEO_SIZE):
    """A 1280x720 video of moving shapes over a gradient, with mild noise:
    H.264 (`h264_encoder`, `H264_OPTIONS`) for a name ending in `_h264.mp4`,
    else OpenCV's MPEG-4 Part 2 (mp4v). Returns the path."""
    from data import video  # see the module doc: imported when needed

    height, width = size
    rng = np.random.default_rng(0)
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    columns = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    background = np.stack([rows + 0 * columns, 0 * rows + columns, (rows + columns) / 2], -1)

    def frame(index):
        image = background.copy()
        for shape in range(4):
            x = int((index * (3 + shape) * 2 + shape * 300) % (width - 160))
            y = int((shape * 170 + 60 * np.sin(index / (10 + shape))) % (height - 120))
            image[y:y + 120, x:x + 160] = (60 * shape, 255 - 50 * shape, 128)
        image += rng.normal(0, 6, size=image.shape[:2] + (1,)).astype(np.float32)
        return np.clip(image, 0, 255).astype(np.uint8)

    frames = (frame(i) for i in range(int(seconds * fps)))
    encoder = h264_encoder()
    if not path.endswith("_h264.mp4") or encoder is None:
        return video.write_video(path, frames, fps=fps, fourcc="mp4v")
    return write_h264(path, frames, fps, encoder)


def write_h264(path, frames, fps, encoder, options=H264_OPTIONS):
    """RGB uint8 frames as an H.264 MP4 written by PyAV's `encoder`, under a
    temporary name renamed into place."""
    import av

    frames = iter(frames)
    first = next(frames)
    with atomic_path(path) as temporary:
        with av.open(temporary, "w", format="mp4") as container:
            stream = container.add_stream(encoder, rate=int(fps))
            stream.height, stream.width = first.shape[:2]
            stream.pix_fmt = "yuv420p"
            stream.options = dict(options)
            for image in (first, *frames):
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return path


def sampled_indices(frame_count, fps, frames):
    """`frames` indices spread uniformly over the video, or with `frames`
    None one every 1 / KEYFRAME_SAMPLING_FPS seconds."""
    if frames is None:
        frames = max(1, int(round(frame_count / fps * KEYFRAME_SAMPLING_FPS)))
    return np.linspace(0, frame_count - 1, frames).astype(np.int64)


def decode_sampled(path, indices, size, threads, decoder="opencv", counts=None):
    """Yields the sampled frames (sorted `indices`) as RGB float32
    [H, W, 3] in 0..255, in order, as they are decoded: with OpenCV
    decoding through the file once and converting only those, with PyAV
    decoding what they need (`data.av_decoder`). `counts` (a dict) gets
    the packets each decoder sent and the frames it decoded."""
    if decoder == "pyav":
        yield from decode_sampled_pyav(path, indices, size, threads, counts)
        return
    import cv2

    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    height, width = size
    wanted = np.bincount(indices, minlength=int(indices[-1]) + 1)
    try:
        for position in range(len(wanted)):
            if not capture.grab():
                raise ValueError(f"{path}: decoding stopped at frame {position}")
            if wanted[position]:
                ok, frame = capture.retrieve()
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32)
                for _ in range(wanted[position]):
                    yield rgb
    finally:
        capture.release()
        if counts is not None:
            counts.update(sent=len(wanted), decoded=len(wanted))


def decode_sampled_pyav(path, indices, size, threads, counts=None):
    from data import av_decoder, video  # see the module doc: imported when needed

    index = av_decoder.index_packets(path)
    if index is None:
        raise ValueError(f"{path}: PyAV cannot index this file's frames exactly")
    presentation = index.presentation_pts
    wanted_pts = presentation[np.unique(indices)]
    repeats = dict(zip(*np.unique(presentation[indices], return_counts=True)))
    needed = av_decoder.decode_plan(index, wanted_pts)
    given = 0
    for pts, frame in av_decoder.iter_decoded(path, index, needed, wanted_pts, threads,
                                              counts=counts):
        rgb = video.convert_frame(av_decoder.bgr(frame), size).astype(np.float32)
        for _ in range(repeats[pts]):
            yield rgb
        given += 1
    if given < len(wanted_pts):
        raise ValueError(f"{path}: {len(wanted_pts) - given} sampled frames did not decode")


def video_info(path):
    import cv2

    capture = cv2.VideoCapture(path)
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()


# ---------------------------------------------------------------------------
# The models in each format.


def build(name, case):
    """(model, config, parts): the Keras model and, for a model over
    backbone features, `{"backbone": images -> features, "head": the
    model on features}` sharing its weights."""
    import keras

    import models  # see the module doc: imported when needed
    from models.backbones import build_frame_backbone  # see the module doc: imported when needed

    keras.utils.set_random_seed(0)
    family = models.get_family(name)
    config = family.get_config(case.preset)
    model = family.build(config)
    if case.backbone is None:
        return model, config, None
    if case.split is not None:
        backbone, head = case.split(model, config)
        return model, config, {"backbone": backbone, "head": head}
    backbone = build_frame_backbone(case.backbone, weights=None, input_shape=(224, 224, 3))
    return model, config, {"backbone": backbone, "head": model}


def write_plain_saved_model(model, path, batch_size=None):
    """A SavedModel of any Keras model with dict or single inputs, outputs
    named `output` (for the backbone, which is not a registered model)."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    spec = tf.TensorSpec((batch_size, *model.input.shape[1:]), model.input.dtype, name="images")

    @tf.function(input_signature=[spec], autograph=False)
    def serve(images):
        return {"output": model(images, training=False)}

    archive.add_endpoint("serve", serve)
    archive.write_out(path, verbose=False)


def random_inputs(model, steps, seed=0, batch_size=1):
    """Random inputs of the model's shapes (frames 0..255 or [0, 1] as the
    model expects, features N(0, 1), masks all true)."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for key, tensor in (model.input.items() if isinstance(model.input, dict) else
                        [("images", model.input)]):
        shape = [batch_size] + [steps if d is None else d for d in tensor.shape[1:]]
        if tensor.dtype == "bool":
            inputs[key] = np.ones(shape, bool)
        elif key in ("features",):
            inputs[key] = rng.normal(size=shape).astype(np.float32)
        else:
            inputs[key] = rng.uniform(0, 255 if key == "images" else 1, size=shape).astype(np.float32)
    return inputs


def convert(name, case, part_name, model, format_name, cache):
    """The cached file of one model (or part) in one format."""
    from train import formats  # see the module doc: imported when needed
    from train.formats.litert import convert_litert  # see the module doc: imported when needed
    from train.formats.onnx import convert_onnx  # see the module doc: imported when needed

    folder = os.path.join(cache, f"{name}-{part_name}-{format_name}")
    path = formats.get_format(format_name).path_in(folder)
    if os.path.exists(path):
        return folder
    os.makedirs(folder, exist_ok=True)
    started = time.perf_counter()
    if part_name == "backbone":
        source = os.path.join(folder, "saved_model")
        write_plain_saved_model(model, source)
        if format_name == "onnx":
            convert_onnx(source, path)
        else:
            calibration = None
            if format_name == "litert-int8":
                def calibration():
                    for seed in range(8):
                        yield {"images": random_inputs(model, 1, seed)["images"]}
            convert_litert(source, path, calibration)
    else:
        steps = case.frames or 60

        def calibration():
            for seed in range(8):
                yield random_inputs(model, steps, seed)

        formats.write(format_name, model, name, folder, calibration)
    print(f"converted {name} {part_name} to {format_name} in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return folder


class TensorFlowRunner:
    """The Keras model traced once as a TensorFlow graph."""

    def __init__(self, model):
        import tensorflow as tf

        if isinstance(model.input, dict):
            spec = [{key: tf.TensorSpec((None, *t.shape[1:]), t.dtype) for key, t in model.input.items()}]
        else:
            spec = [tf.TensorSpec((None, *model.input.shape[1:]), model.input.dtype)]
        def call(inputs):
            return model(inputs, training=False)

        self.function = tf.function(call, input_signature=spec, autograph=False)
        self.dict_inputs = isinstance(model.input, dict)

    def __call__(self, inputs):
        value = inputs if self.dict_inputs else inputs["images"]
        output = self.function(value)
        return output.numpy() if hasattr(output, "numpy") else output


def load(format_name, folder, threads, model):
    from train import formats  # see the module doc: imported when needed

    if format_name == KERAS_ROW:
        return TensorFlowRunner(model)
    return formats.load_runner(format_name, folder, threads)


def first_output(outputs):
    return next(iter(outputs.values())) if isinstance(outputs, dict) else outputs


# ---------------------------------------------------------------------------
# Measuring, in one child process per thread count.


def measure_child(args):
    """Runs in the child: every model and format at `args.child_threads`
    threads; prints one JSON line per row."""
    threads = args.child_threads
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import cv2

    cv2.setNumThreads(threads)

    frame_count, fps = video_info(args.video)
    keyframe_indices = sampled_indices(frame_count, fps, None)
    decode_times = {decoder: [] for decoder in args.decoders}
    counts = {decoder: {} for decoder in args.decoders}
    for index in range(1 + args.repeats):  # the first round warms the file cache
        for decoder in args.decoders:
            wall, cpu = timed(lambda: all(True for _ in decode_sampled(
                args.video, keyframe_indices, (224, 224), threads, decoder, counts[decoder])))
            if index:
                decode_times[decoder].append((wall, cpu))
    for decoder in args.decoders:
        print(json.dumps({
            "model": "(decoding only)", "format": "-", "decoder": DECODER_NAMES[decoder],
            "threads": threads, "frames": len(keyframe_indices),
            "end to end": statistics.median(w for w, _ in decode_times[decoder]),
            "end to end CPU": statistics.median(c for _, c in decode_times[decoder]),
            "decoded": f"{counts[decoder]['decoded']} of {counts[decoder]['sent']} sent",
            "load": load_average()}), flush=True)
    for name in args.models:
        case = cases()[name]
        model, config, parts = build(name, case)
        # A model whose int8 export is refused still gets an int8 row when it
        # runs as backbone and head: an int8 backbone before a float head.
        formats = [f for f in args.formats if not refuses(name, f) or parts is not None]
        indices = sampled_indices(frame_count, fps, case.frames)
        size = (224, 224) if parts is not None else tuple(config.input_shape[1:3])
        steps = len(indices)
        clip = random_inputs(model, steps) if parts is None else None
        images = None
        runners = {}
        for format_name in formats:
            if parts is None:
                folder = None if format_name == KERAS_ROW else convert(
                    name, case, "model", model, format_name, args.cache)
                runners[format_name] = {"model": load(format_name, folder, threads, model)}
            else:
                runners[format_name] = {}
                for part_name, part in parts.items():
                    part_format = format_name
                    if part_name == "head" and refuses(name, format_name):
                        part_format = "litert"  # int8 backbone, float head
                    folder = None if part_format == KERAS_ROW else convert(
                        name, case, part_name, part, part_format, args.cache)
                    runners[format_name][part_name] = load(part_format, folder, threads, part)
                images = random_inputs(parts["backbone"], steps, batch_size=steps)["images"]

        def model_only(parts_of):
            if "model" in parts_of:
                return first_output(parts_of["model"](clip))
            features = first_output(parts_of["backbone"]({"images": images}))
            return first_output(parts_of["head"](head_inputs(features)))

        def end_to_end(parts_of, decoder):
            frames = np.stack(list(decode_sampled(args.video, indices, size, threads, decoder)))
            if "model" in parts_of:
                return first_output(parts_of["model"]({"frames": frames[None] / 255.0}))
            features = first_output(parts_of["backbone"]({"images": frames}))
            return first_output(parts_of["head"](head_inputs(features)))

        def overlapped(parts_of, decoder):
            decoded = queue.Queue(maxsize=2 * args.overlap_batch)

            def decode():
                for frame in decode_sampled(args.video, indices, size, threads, decoder):
                    decoded.put(frame)
                decoded.put(None)

            worker = threading.Thread(target=decode, daemon=True)
            worker.start()
            features, batch, done = [], [], False
            while not done:
                frame = decoded.get()
                done = frame is None
                if not done:
                    batch.append(frame)
                if batch and (done or len(batch) == args.overlap_batch):
                    images = np.stack(batch)
                    features.append(first_output(parts_of["backbone"]({"images": images})))
                    batch = []
            worker.join()
            return first_output(parts_of["head"](head_inputs(np.concatenate(features))))

        measurements = {("model only", None): model_only}
        for decoder in args.decoders:
            measurements["end to end", decoder] = lambda p, d=decoder: end_to_end(p, d)
            if parts is not None:
                measurements["overlapped", decoder] = lambda p, d=decoder: overlapped(p, d)
        times = {(f, key): [] for f in runners for key in measurements}
        for key, measure in measurements.items():
            for format_name, parts_of in runners.items():
                measure(parts_of)  # warm-up
        for _ in range(args.repeats):
            for key, measure in measurements.items():
                for format_name, parts_of in runners.items():
                    times[format_name, key].append(timed(lambda: measure(parts_of)))
        for format_name in runners:
            shown = format_name
            if parts is not None and refuses(name, format_name):
                shown = f"{format_name} backbone + litert head"
            for decoder in args.decoders:
                row = {"model": name, "format": shown, "decoder": DECODER_NAMES[decoder],
                       "threads": threads, "frames": steps, "load": load_average()}
                for what, which in measurements:
                    if which in (None, decoder):
                        walls, cpus = zip(*times[format_name, (what, which)])
                        row[what] = statistics.median(walls)
                        row[f"{what} CPU"] = statistics.median(cpus)
                print(json.dumps(row), flush=True)


DECODER_NAMES = {"opencv": "OpenCV", "pyav": "PyAV"}


def head_inputs(features):
    features = np.asarray(features, np.float32)[None]
    return {"features": features, "mask": np.ones(features.shape[:2], bool)}


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(cases()), help="comma-separated model names")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--decoders", default=",".join(DECODERS),
                        help="comma-separated decoders (data.video's)")
    parser.add_argument("--overlap-batch", type=int, default=6,
                        help="frames per backbone call while decoding overlaps it")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--video", default=None,
                        help="video file (default: a 30 s 1280x720 H.264 one written into --cache)")
    parser.add_argument("--cache", default=DEFAULT_CACHE, help="folder of converted models and the video")
    parser.add_argument("--child-threads", type=int, default=None, help=argparse_hidden())
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.formats = [f for f in args.formats.split(",") if f]
    args.decoders = [d for d in args.decoders.split(",") if d]
    for name in args.decoders:
        if name not in DECODERS:
            raise ValueError(f"--decoders: unknown decoder {name!r}; decoders: {', '.join(DECODERS)}")
    if args.overlap_batch < 1:
        raise ValueError(f"--overlap-batch must be >= 1, got {args.overlap_batch}")
    for name in args.models:
        if name not in cases():
            raise ValueError(f"--models: unknown model {name!r}; models: {', '.join(cases())}")
    for name in args.formats:
        if name not in FORMATS:
            raise ValueError(f"--formats: unknown format {name!r}; formats: {', '.join(FORMATS)}")
    os.makedirs(args.cache, exist_ok=True)
    if args.video is None:
        args.video = benchmark_video_path(args.cache)
        if not os.path.exists(args.video):
            started = time.perf_counter()
            write_benchmark_video(args.video)
            print(f"wrote {args.video} in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
    elif not os.path.isfile(args.video):
        raise FileNotFoundError(f"--video {args.video}: no such file")
    if args.child_threads is not None:
        measure_child(args)
        return 0

    rows = []
    for threads in [int(t) for t in args.threads.split(",") if t]:
        command = [sys.executable, "-m", "benchmarks.latency", "--child-threads", str(threads),
                   "--models", ",".join(args.models), "--formats", ",".join(args.formats),
                   "--decoders", ",".join(args.decoders),
                   "--overlap-batch", str(args.overlap_batch),
                   "--repeats", str(args.repeats), "--video", args.video, "--cache", args.cache]
        result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"the {threads}-thread measurement failed (exit {result.returncode})")
        rows += [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    frame_count, fps = video_info(args.video)
    print(f"machine: {machine_description()}; video {args.video}: {describe_video(args.video)}, "
          f"{frame_count} frames at {fps:g} fps; backbone batch while overlapping "
          f"{args.overlap_batch}")
    print(markdown(rows))
    return 0


def describe_video(path):
    """The codec and frame types of a file, e.g. "h264, 32 keyframes, no
    B-frames"."""
    from data import av_decoder  # see the module doc: imported when needed

    index = av_decoder.index_packets(path)
    if index is None:
        return "not indexable by PyAV"
    reordered = bool(np.any(np.diff(index.pts) < 0))
    return (f"{index.codec}, {int(index.keyframe.sum())} keyframes, "
            f"{'B-frames' if reordered else 'no B-frames'}")


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


def markdown(rows):
    columns = ["model", "format", "decoder", "threads", "frames", "model only (s)",
               "end to end (s)", "overlapped (s)", "model only CPU (s)", "end to end CPU (s)",
               "overlapped CPU (s)", "load"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]

    def seconds(row, key):
        return f"{row[key]:.3f}" if key in row else ""

    for row in sorted(rows, key=lambda r: (r["model"], r["threads"], r["format"], r["decoder"])):
        decoder = row["decoder"] + (f" ({row['decoded']})" if "decoded" in row else "")
        cells = [row["model"], row["format"], decoder, row["threads"], row["frames"],
                 seconds(row, "model only"), seconds(row, "end to end"),
                 seconds(row, "overlapped"), seconds(row, "model only CPU"),
                 seconds(row, "end to end CPU"), seconds(row, "overlapped CPU"), row["load"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    from common.cli import run_main  # see the module doc: imported when needed

    raise SystemExit(run_main(main, sys.argv[1:]))

"""Feature extraction speed per backbone, and its peak memory as videos grow.

`python -m benchmarks.extraction [--backbones ...] [--size H W] [--frames N]`
prints two Markdown tables:

1. Per backbone (random weights, so nothing is downloaded): frames/s of the
   backbone alone (median over batches) and end-to-end videos/s and
   frames/s of `extract_features` (decode, resize, backbone, HDF5 write)
   with multi-scale sampling, each with its CPU seconds (all threads: the
   figure that holds on a shared machine) and the load average.
2. Peak memory of an extraction of 10 and of 40 videos, each measured in a
   fresh process: the process's peak resident set (`ru_maxrss`) and the
   peak of Python/NumPy allocations (`tracemalloc`), beside the size of the
   feature array a keep-everything-then-pad extractor would hold. Flat
   numbers from 10 to 40 videos show the streaming writer at work.

Project modules are imported inside the functions that use them: a
benchmark child sets its threads and Keras backend before TensorFlow loads,
and the GPU machines run the JAX backend without TensorFlow.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks.timing import load_average, machine_description, median_times
from common.tables import markdown_table
from common.cli import ArgumentParser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_videos(folder, count, num_frames=48, size=(120, 160)):
    """`count` real videos in two class folders (alternating mp4 / avi)."""
    from data.video import write_video  # see the module doc: imported when needed

    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        extension = ".mp4" if index % 2 else ".avi"
        path = os.path.join(folder, f"class{index % 2}", f"video{index:03d}{extension}")
        if not os.path.exists(path):
            write_video(path, rng.integers(0, 256, (num_frames, *size, 3), dtype=np.uint8), fps=10.0)
        paths.append(path)
    return paths


def backbone_row(name, videos_dir, size, frames, batch_size):
    from data.datasets import scan_dataset  # see the module doc: imported when needed
    from data.features import FrameFeatureExtractor, extract_features  # imported when needed
    from data.video import sample_frame_indices  # see the module doc: imported when needed

    extractor = FrameFeatureExtractor(name, None, size, batch_size=batch_size, seed=0)
    batch = np.random.default_rng(0).integers(0, 255, (batch_size, *size, 3), dtype=np.uint8)
    seconds, cpu = median_times(lambda: extractor.frame_features(batch), repeats=3, warmup=1)
    dataset = scan_dataset(videos_dir)
    with tempfile.TemporaryDirectory() as scratch:
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = extract_features(
            dataset, os.path.join(scratch, "features.h5"), backbone=name, weights=None,
            num_frames=frames, size=size, batch_size=batch_size, progress=False,
            extractor=extractor, log=lambda line: None,
        )
        elapsed = time.perf_counter() - started
        elapsed_cpu = time.process_time() - cpu_started
    # frames through the backbone per video: the sampled frames (the other
    # scales are resampled from them)
    per_video = len(np.unique(sample_frame_indices(48, frames)))
    return {
        "backbone": name,
        "D": extractor.feature_dim,
        "backbone frames/s": batch_size / seconds,
        "backbone CPU ms/frame": 1000 * cpu / batch_size,
        "videos/s (end to end)": summary.written / elapsed,
        "frames/s (end to end)": summary.written * per_video / elapsed,
        "CPU s/video (end to end)": elapsed_cpu / summary.written,
        "load": load_average(),
    }


def memory_run(videos_dir, count, backbone, size, frames):
    """Runs in a fresh process: one extraction, then prints peak memory as JSON."""
    import tracemalloc

    from data.datasets import scan_dataset  # see the module doc: imported when needed
    from data.features import FrameFeatureExtractor, extract_features, scale_lengths  # imported when needed

    dataset = scan_dataset(videos_dir)
    keep = [i for i in range(len(dataset)) if i < count]
    subset = type(dataset)(tuple(dataset.paths[i] for i in keep),
                           tuple(dataset.labels[i] for i in keep), dataset.class_names)
    extractor = FrameFeatureExtractor(backbone, None, size, batch_size=16, seed=0)
    extractor.frame_features(np.zeros((1, *size, 3), np.uint8))  # trace before measuring
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as scratch:
        extract_features(subset, os.path.join(scratch, "f.h5"), backbone=backbone, weights=None,
                         num_frames=frames, size=size, batch_size=16, progress=False,
                         extractor=extractor, log=lambda line: None)
    _, python_peak = tracemalloc.get_traced_memory()
    steps = max(scale_lengths(frames))
    print(json.dumps({
        "videos": count,
        "peak RSS (MiB)": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "RSS growth during extraction (MiB)":
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024,
        "peak Python/NumPy allocations (MiB)": python_peak / 2**20,
        "features held by keep-everything (MiB)": count * steps * extractor.feature_dim * 4 / 2**20,
    }))


def build_parser():
    """The command line of `main`."""
    parser = ArgumentParser(prog="python -m benchmarks.extraction", description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", nargs="+",
                        default=["resnet50", "resnet101", "efficientnet_v2_s", "efficientnet_v2_m",
                                 "efficientnet_b0"],
                        help="backbones whose extraction speed is measured (data.features' names)")
    parser.add_argument("--size", type=int, nargs=2, default=[112, 112], metavar=("H", "W"),
                        help="backbone input size (224 224 is the real one; smaller keeps this short)")
    parser.add_argument("--frames", type=int, default=8, help="frames per video at scale 1.0")
    parser.add_argument("--videos", type=int, default=4, help="videos in the speed runs")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="frames per backbone call in the speed runs")
    parser.add_argument("--memory-backbone", default="efficientnet_b0",
                        help="backbone of the peak-memory runs")
    parser.add_argument("--memory-counts", type=int, nargs="+", default=[10, 40],
                        help="numbers of videos extracted in the memory runs, one fresh process each")
    parser.add_argument("--memory-size", type=int, nargs=2, default=[32, 32], metavar=("H", "W"),
                        help="backbone input size of the memory runs, in pixels")
    parser.add_argument("--memory-frames", type=int, default=64,
                        help="frames per video in the memory runs (74-step rows)")
    parser.add_argument("--memory-run", nargs=2, metavar=("DIR", "COUNT"), help=argparse_hidden())
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    size = tuple(args.size)

    if args.memory_run:
        memory_run(args.memory_run[0], int(args.memory_run[1]), args.memory_backbone,
                   tuple(args.memory_size), args.memory_frames)
        return 0

    print(f"machine: {machine_description()}")
    with tempfile.TemporaryDirectory() as scratch:
        speed_dir = os.path.join(scratch, "speed")
        write_videos(speed_dir, args.videos)
        rows = [backbone_row(name, speed_dir, size, args.frames, args.batch_size)
                for name in args.backbones]
        print(f"\nExtraction speed, weights=None, {size[0]}x{size[1]} frames, {args.frames} frames "
              f"per video with multi-scale sampling, batch {args.batch_size}, {args.videos} videos "
              "of 48 frames at 160x120:\n")
        print(markdown_table(rows, list(rows[0])))

        memory_dir = os.path.join(scratch, "memory")
        write_videos(memory_dir, max(args.memory_counts))
        results = []
        for count in args.memory_counts:
            output = subprocess.run(
                [sys.executable, "-m", "benchmarks.extraction", "--memory-run", memory_dir, str(count),
                 "--memory-backbone", args.memory_backbone,
                 "--memory-size", *map(str, args.memory_size),
                 "--memory-frames", str(args.memory_frames)],
                cwd=ROOT, capture_output=True, text=True, check=True,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            ).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
        print(f"\nPeak memory of one extraction ({args.memory_backbone}, "
              f"{args.memory_size[0]}x{args.memory_size[1]}, {args.memory_frames} frames, "
              "multi-scale, each in a fresh process):\n")
        print(markdown_table(results, list(results[0])))
    return 0


def argparse_hidden():
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())

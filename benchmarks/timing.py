"""Timing helpers shared by the benchmark scripts: medians, never means."""

import os
import platform
import statistics
import time


def call_seconds(step, repeats, warmup=2):
    """Wall times of `repeats` calls of `step()`, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return times


def median_seconds(step, repeats, warmup=2):
    """Median wall time of `step()` over `repeats` calls after `warmup`."""
    return statistics.median(call_seconds(step, repeats, warmup))


def best_seconds(step, repeats, warmup=2):
    """Shortest wall time of `step()` over `repeats` calls after `warmup`.

    For a peak rate: other work on the machine only ever slows a call down,
    so the fastest call is the closest to what the hardware can do.
    """
    return min(call_seconds(step, repeats, warmup))


def machine_description():
    """One line naming this machine: CPU model, cores, backend, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import keras

    return (
        f"{cpu}, {os.cpu_count()} cores, Keras {keras.__version__} "
        f"({keras.backend.backend()} backend), Python {platform.python_version()}"
    )

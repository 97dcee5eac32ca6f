"""Timing helpers shared by the benchmark scripts: medians, never means.

Every timed call also has its CPU time: seconds of CPU the process used
during the call, all its threads together (`time.process_time`). On a
shared machine the wall time includes waiting for a core and moves with
the load; the CPU time mostly does not, so it is the figure to compare
across runs (about wall time x busy threads on a quiet machine). Report
the load average (`load_average`) beside both.
"""

import os
import platform
import statistics
import time


def timed(step):
    """(wall seconds, CPU seconds) of one call of `step()`."""
    started, cpu_started = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - started, time.process_time() - cpu_started


def call_times(step, repeats, warmup=2):
    """(wall, CPU) seconds of `repeats` calls of `step()`, after `warmup`
    untimed calls."""
    for _ in range(warmup):
        step()
    return [timed(step) for _ in range(repeats)]


def call_seconds(step, repeats, warmup=2):
    """Wall times of `repeats` calls of `step()`, after `warmup` untimed calls."""
    return [wall for wall, _ in call_times(step, repeats, warmup)]


def median_times(step, repeats, warmup=2):
    """(median wall seconds, median CPU seconds) of `step()` over `repeats`
    calls after `warmup`."""
    times = call_times(step, repeats, warmup)
    return statistics.median(w for w, _ in times), statistics.median(c for _, c in times)


def median_seconds(step, repeats, warmup=2):
    """Median wall time of `step()` over `repeats` calls after `warmup`."""
    return statistics.median(call_seconds(step, repeats, warmup))


def best_seconds(step, repeats, warmup=2):
    """Shortest wall time of `step()` over `repeats` calls after `warmup`.

    For a peak rate: other work on the machine only ever slows a call down,
    so the fastest call is the closest to what the hardware can do.
    """
    return min(call_seconds(step, repeats, warmup))


def load_average():
    """The machine's 1-minute load average (runnable processes), rounded."""
    return round(os.getloadavg()[0], 1)


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

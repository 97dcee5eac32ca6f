"""benchmarks.quoted_numbers: every quoted demo number is listed with its
command, and its readings work on a run folder (tiny runs here; the full
check, `python -m benchmarks.quoted_numbers`, takes minutes)."""

import math
import os
import shutil

import pytest

from benchmarks import quoted_numbers
from train import run, tasks

# One tiny run per kind of report the quoted runs write: a classifier's
# (convlstm, bilstm_attention and r2plus1d write the same files) and a
# frame scorer's.
TINY_RUNS = {
    "classification": [
        "--model", "convlstm", "--synthetic-clips", "8", "--input-shape", "4,16,16,1",
        "--filters", "2,3", "--batch-size", "4", "--epochs", "1",
    ],
    "frame_scores": [
        "--model", "keyframe_transformer", "--model-dim", "16", "--num-layers", "1",
        "--num-heads", "2", "--ff-dim", "32", "--scorer-units", "8", "--batch-size", "4",
        "--epochs", "1", "--synthetic-videos", "10",
    ],
}


def test_every_quoted_demo_number_is_listed():
    uncovered = quoted_numbers.quoted_demo_numbers()
    assert not uncovered, "quoted numbers with no entry in benchmarks.quoted_numbers.QUOTES:\n" + \
        "\n".join(f"{document}: {number} in '...{context}...'" for document, number, context in uncovered)
    assert not quoted_numbers.missing_quotes()


def test_every_entry_reads_each_of_its_numbers():
    for quote in quoted_numbers.QUOTES:
        assert quote.numbers(), quote
        if quote.run is None:
            assert quote.reason, quote
        else:
            assert quote.run in quoted_numbers.RUNS, quote
            assert len(quote.readings) == len(quote.numbers()), quote


def test_a_new_quoted_number_is_found(tmp_path):
    os.makedirs(tmp_path / "docs")
    shutil.copy(os.path.join(quoted_numbers.ROOT, "README.md"), tmp_path / "README.md")
    assert quoted_numbers.quoted_demo_numbers(str(tmp_path)) == []
    with open(tmp_path / "docs" / "new.md", "w") as file:
        file.write("The demo reaches a test\naccuracy of 0.912 in a minute.\n\n"
                   "| a table | accuracy 0.5 |\n")
    (found,) = quoted_numbers.quoted_demo_numbers(str(tmp_path))
    assert found[:2] == (os.path.join("docs", "new.md"), "0.912")


def test_numbers_are_rounded_as_the_documents_write_them():
    assert quoted_numbers.rounded(0.984375, "0.984") == "0.984"
    assert quoted_numbers.rounded(1.0, "1.0") == "1.0"
    assert quoted_numbers.rounded(0.375, "37.50%") == "37.50%"
    assert quoted_numbers.rounded(0.4761, "47.6%") == "47.6%"


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A finished tiny run of each kind, by the task's kind."""
    folders = {}
    for kind, flags in TINY_RUNS.items():
        out = str(tmp_path_factory.mktemp("runs") / kind)
        assert run.main([*flags, "--out", out, "--verbose", "0", "--run-eagerly"]) == 0
        folders[kind] = out
    return folders


def test_the_readings_work_on_a_run_folder(tiny_runs):
    for quote in quoted_numbers.QUOTES:
        if quote.run is None:
            continue
        task_kind = tasks.task_for(quoted_numbers.RUNS[quote.run].flags[1]).kind
        kind = "frame_scores" if task_kind == "frame_scores" else "classification"
        for written, shown, _, describe in quoted_numbers.compare(quote, tiny_runs[kind]):
            assert not math.isnan(float(shown.rstrip("%"))), (quote, describe)
            assert len(shown.rstrip("%").partition(".")[2]) == len(written.rstrip("%").partition(".")[2])

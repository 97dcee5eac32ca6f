"""train.export: versions TF Serving reads, exports at the same time, stale
staging folders, and runs whose files do not fit together.

The exports here go through a stand-in of the litert format that writes an
empty file and answers with the Keras model itself: what is under test is
where a version lands, not a runtime.
"""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.cli_calls import call
from tests.prediction_fixtures import make_run
from train import export, formats

BIG = "99999999999999999999999999999"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("export") / "run", "convlstm", {"data": "synthetic"},
                    ["left", "right"], input_shape=(4, 12, 12, 3), num_classes=1)


class KerasRunner(formats.Runner):
    def __init__(self, model):
        self.model = model

    def run(self, inputs):
        return {"probabilities": np.asarray(self.model(inputs))}

    def signature(self):
        return {"frames": [None, 4, 12, 12, 3]}, {"probabilities": [None, 1]}


@pytest.fixture
def stand_in(run, monkeypatch):
    """The litert format, written as an empty file and run by Keras;
    `during_write` (a list of functions) runs while an export is written."""
    model = keras.saving.load_model(os.path.join(run, "best.keras"))
    during_write = []

    def write(model_, name, folder, calibration=None, source=None):
        for action in during_write:
            action()
        path = os.path.join(folder, "model.tflite")
        open(path, "wb").close()
        return formats.Written(path, [], None)

    litert = formats.get_format("litert")
    monkeypatch.setattr(litert, "write", write)
    monkeypatch.setattr(litert, "load_runner", lambda *args: KerasRunner(model))
    return during_write


def export_cli(run, base, capsys, *flags):
    return call(export.main, ["--run", run, "--out", str(base), "--format", "litert",
                              "--verify-examples", "4", *flags], capsys)


def versions(base):
    return sorted(os.listdir(base / "convlstm" / "litert"))


def finished_version(folder):
    """A version folder as another export leaves it."""
    os.makedirs(folder)
    with open(os.path.join(folder, export.REPORT_NAME), "w") as file:
        file.write("{}")


@pytest.mark.parametrize("version", [BIG, "0", "-3", str(2**63)])
def test_versions_are_the_int64_numbers_tf_serving_reads(version, run, tmp_path, capsys):
    code, _, err = export_cli(run, tmp_path, capsys, "--version", version)
    assert code == 2 and err == (
        f"error: --version must be an integer from 1 to {2**63 - 1} (TF Serving reads versions "
        f"as int64), got {int(version)}\n")
    assert not (tmp_path / "convlstm").exists()


def test_the_default_version_counts_on_from_versions_tf_serving_reads(tmp_path):
    for name in ("2", BIG, "litert"):
        os.makedirs(tmp_path / "convlstm" / name)
    assert export.next_version(str(tmp_path / "convlstm")) == 3
    os.makedirs(tmp_path / "convlstm" / str(2**63 - 1))
    with pytest.raises(ValueError, match=f"holds version {2**63 - 1}, the highest TF Serving"):
        export.next_version(str(tmp_path / "convlstm"))


def test_exports_at_the_same_time_take_distinct_versions(run, stand_in, tmp_path, capsys):
    litert = tmp_path / "convlstm" / "litert"
    # Another export finishes version 1 while this one is written.
    stand_in.append(lambda: finished_version(litert / "1"))
    code, out, err = export_cli(run, tmp_path, capsys)
    assert code == 0, err
    assert out.startswith(f"exported {litert / '2' / 'model.tflite'}")
    assert json.load(open(litert / "2" / export.REPORT_NAME))["version"] == 2
    # With --version, the one asked for or one line.
    stand_in[:] = [lambda: finished_version(litert / "7")]
    code, _, err = export_cli(run, tmp_path, capsys, "--version", "7")
    assert code == 2 and err.count("\n") == 1
    assert f"{litert / '7'} was written by another export meanwhile" in err
    assert versions(tmp_path) == ["1", "2", "7"]


def test_staging_folders_of_exports_that_are_gone_are_removed(run, stand_in, tmp_path, capsys):
    litert = tmp_path / "convlstm" / "litert"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    running = f".tmp-p{os.getpid()}-running-1"
    for name in (f".tmp-p{gone}-abc-1", running, ".tmp-old-1"):
        os.makedirs(litert / name / "model")
    os.utime(litert / ".tmp-old-1", (1, 1))  # an older export's staging, a day old and more
    code, _, err = export_cli(run, tmp_path, capsys)
    assert code == 0, err
    assert versions(tmp_path) == [running, "1"]


def test_bad_output_folders_and_thread_counts_are_one_line(run, tmp_path, capsys):
    (tmp_path / "convlstm").write_text("a file where the model's folder goes")
    code, _, err = call(export.main, ["--run", run, "--out", str(tmp_path)], capsys)
    assert code == 2 and err == (f"error: --out {tmp_path}: {tmp_path / 'convlstm'} is a file; "
                                 "expected a folder of exported versions\n")
    code, _, err = call(export.main, ["--run", run, "--threads", "-1"], capsys)
    assert code == 2 and err == "error: --threads must be a number of threads >= 1, got -1\n"


# ---------------------------------------------------------------------------
# Runs whose files do not fit together: refused by export, predict and the page.


def broken_runs(run, tmp_path):
    """{what: run folder} of copies of `run` with one file that does not fit."""
    def copy(name):
        folder = tmp_path / name
        shutil.copytree(run, folder)
        return folder

    other = copy("other_model")
    make_run(tmp_path / "r2plus1d", "r2plus1d", {"data": "synthetic"})
    shutil.copy(tmp_path / "r2plus1d" / "best.keras", other / "best.keras")
    three = copy("three_names")
    (three / "class_names.json").write_text(json.dumps(["a", "b", "c"]))
    return {
        "other_model": (other, f"{other / 'best.keras'}: holds a r2plus1d model but config.json "
                               "names convlstm; the checkpoint is not this run's"),
        "three_names": (three, f"{three / 'class_names.json'}: 3 names but the model's output "
                               "tells 2 classes apart; expected a JSON list of 2 class names, in "
                               "id order"),
    }


def test_a_run_whose_files_do_not_fit_is_refused(run, tmp_path, capsys):
    from train import predict
    from train.serving import app as app_lib
    from tests.prediction_fixtures import write_scene_video

    video = str(tmp_path / "clip.mp4")
    write_scene_video(video, seconds=1.0, fps=10.0, scenes=1, size=(24, 32))
    for folder, message in broken_runs(run, tmp_path).values():
        code, _, err = call(export.main, ["--run", str(folder), "--out", str(tmp_path / "out")],
                            capsys)
        assert code == 2 and err == f"error: {message}\n"
        code, _, err = call(predict.main, ["--run", str(folder), "--video", video], capsys)
        assert code == 2 and err == f"error: {message}\n"
        holder = app_lib.ModelHolder(str(folder)).start()
        holder.ready.wait(120)
        assert holder.state() == "error" and holder.error == message
        assert capsys.readouterr().err == f"error: {message}\n"  # the page's log


def test_a_run_without_class_names_says_so_once(run, tmp_path, capsys):
    from train import predict
    from tests.prediction_fixtures import write_scene_video

    folder = tmp_path / "no_names"
    shutil.copytree(run, folder)
    os.remove(folder / "class_names.json")
    videos = tmp_path / "videos"
    for name in ("a", "b"):
        write_scene_video(str(videos / f"{name}.mp4"), seconds=1.0, fps=10.0, scenes=1,
                          size=(24, 32))
    code, out, err = call(predict.main, ["--run", str(folder), "--video", str(videos)], capsys)
    assert code == 0, err
    note = (f"note: {folder} has no class_names.json; its 2 classes are named by their ids 0 "
            "to 1")
    assert err.count(note) == 1
    assert {json.loads(line)["label"] for line in out.splitlines()} <= {"0", "1"}

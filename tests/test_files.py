"""Atomic writes: complete or absent, never half, with the usual file mode."""

import os
import stat

import pytest

from common import files


def test_write_json_lands_with_the_mode_open_would_give(tmp_path):
    path = tmp_path / "a.json"
    previous = os.umask(0o027)
    try:
        files.write_json(path, {"b": 1, "a": [1, 2]})
    finally:
        os.umask(previous)
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ["a.json"]


def test_concurrent_writers_get_their_own_temporary_names(tmp_path):
    path = tmp_path / "x.txt"
    with files.atomic_path(path) as first, files.atomic_path(path) as second:
        assert first != second
        assert first.endswith("-x.txt") and second.endswith("-x.txt")
        open(first, "w").write("first")
        open(second, "w").write("second")
    assert path.read_text() == "first"  # the outer block finished last
    assert os.listdir(tmp_path) == ["x.txt"]


def test_read_json_names_a_corrupt_file(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"epoch": ')
    with pytest.raises(ValueError, match=r"state.json: not a valid JSON backup state"):
        files.read_json(path, "backup state")


# Folders.


class Crash(Exception):
    pass


def test_a_crash_inside_the_folder_block_leaves_no_folder_and_no_temporary(tmp_path):
    target = tmp_path / "1"
    with pytest.raises(Crash):
        with files.atomic_folder(target) as folder:
            os.makedirs(os.path.join(folder, "variables"))
            (tmp_path / os.path.basename(folder) / "variables" / "data").write_text("half")
            raise Crash()
    assert os.listdir(tmp_path) == []


def test_a_finished_folder_is_exactly_the_folder_with_the_usual_mode(tmp_path):
    target = tmp_path / "1"
    previous = os.umask(0o027)
    try:
        with files.atomic_folder(target) as folder:
            assert os.path.dirname(folder) == str(tmp_path)
            assert os.path.basename(folder).startswith(".tmp-") and folder.endswith("-1")
            assert not target.exists()  # nothing under the final name while it is written
            os.makedirs(os.path.join(folder, "variables"))
            files.write_atomic(os.path.join(folder, "variables", "data"), "weights")
            files.write_atomic(os.path.join(folder, "report.json"), "{}")
    finally:
        os.umask(previous)
    assert os.listdir(tmp_path) == ["1"]
    assert sorted(os.listdir(target)) == ["report.json", "variables"]
    assert (target / "variables" / "data").read_text() == "weights"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o750


def test_the_folder_its_files_and_its_parent_are_flushed_around_the_rename(tmp_path, monkeypatch):
    flushed = []
    target = tmp_path / "1"

    def record(kind):
        def flush(path):
            flushed.append((kind, os.path.relpath(path, tmp_path), target.exists()))
        return flush

    with files.atomic_folder(target) as folder:
        os.makedirs(os.path.join(folder, "variables"))
        open(os.path.join(folder, "variables", "data"), "w").write("weights")
        monkeypatch.setattr(files, "_fsync_file", record("file"))
        monkeypatch.setattr(files, "fsync_directory", record("folder"))
        temporary = os.path.basename(folder)
    assert flushed == [
        ("file", os.path.join(temporary, "variables", "data"), False),
        ("folder", os.path.join(temporary, "variables"), False),
        ("folder", temporary, False),
        ("folder", ".", True),  # the parent, once the rename is in it
    ]


def test_an_existing_folder_is_refused_unless_replacing_is_asked_for(tmp_path):
    target = tmp_path / "1"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(FileExistsError, match=r"1: exists; it is not replaced"):
        with files.atomic_folder(target):
            pytest.fail("the block runs only when the folder may be written")

    # A folder that appears while the block runs is refused at the rename.
    with pytest.raises(FileExistsError, match=r"2: exists; it is not replaced"):
        with files.atomic_folder(tmp_path / "2") as folder:
            open(os.path.join(folder, "new"), "w").write("new")
            (tmp_path / "2").mkdir()
    assert os.listdir(tmp_path / "2") == []

    with files.atomic_folder(target, replace=True) as folder:
        open(os.path.join(folder, "new"), "w").write("new")
    assert os.listdir(target) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]


def test_a_replacement_that_fails_keeps_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "1"
    target.mkdir()
    (target / "old").write_text("old")

    def fail(temporary, path):
        raise OSError("disk full")

    monkeypatch.setattr(files, "rename_into_place", fail)
    with pytest.raises(OSError, match="disk full"):
        with files.atomic_folder(target, replace=True) as folder:
            open(os.path.join(folder, "new"), "w").write("new")
    assert os.listdir(tmp_path) == ["1"] and os.listdir(target) == ["old"]


def test_a_file_renamed_into_place_is_flushed_before_and_its_folder_after(tmp_path, monkeypatch):
    flushed = []
    monkeypatch.setattr(files, "_fsync_file",
                        lambda path: flushed.append(("file", os.path.basename(path))))
    monkeypatch.setattr(files, "fsync_directory",
                        lambda path: flushed.append(("folder", os.listdir(path))))
    (tmp_path / "out.h5.partial").write_text("rows")
    files.rename_into_place(tmp_path / "out.h5.partial", tmp_path / "out.h5")
    assert flushed == [("file", "out.h5.partial"), ("folder", ["out.h5"])]

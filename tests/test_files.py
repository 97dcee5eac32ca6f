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

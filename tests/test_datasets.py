"""Scanning class-per-folder trees, official split lists and manifests."""

import logging
import os

import pytest

from data.datasets import read_manifest, scan_dataset, scan_video_folder
from data.video import read_clip
from tests.video_files import write_class_tree, write_text_file, write_video

LAYOUT = {
    "walk": ["w1.mp4", "w2.avi", "w3.mkv"],
    "run": ["r1.avi", "r2.mp4"],
    "Jump": ["j1.mov"],
}


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "videos"
    write_class_tree(root, LAYOUT, num_frames=4, size=(16, 16))
    # not videos, hidden, or directly in root: ignored
    write_text_file(root / "walk" / "README.txt")
    write_text_file(root / "walk" / ".hidden.mp4")
    write_text_file(root / "loose.mp4")
    os.makedirs(root / ".cache")
    return root


def test_folder_tree_sorted_stable_mapping(tree):
    dataset = scan_video_folder(tree)
    assert dataset.class_names == ("Jump", "run", "walk")  # sorted, case-sensitive
    assert dataset.category_mapping == {"Jump": 0, "run": 1, "walk": 2}
    names = [os.path.relpath(path, tree) for path in dataset.paths]
    assert names == ["Jump/j1.mov", "run/r1.avi", "run/r2.mp4",
                     "walk/w1.mp4", "walk/w2.avi", "walk/w3.mkv"]
    assert dataset.labels == (0, 1, 1, 2, 2, 2)
    assert dataset.splits is None and len(dataset) == 6
    assert all(os.path.isabs(path) for path in dataset.paths)
    # the scanned files are real, readable videos
    assert read_clip(dataset.paths[1], num_frames=2, size=8).shape == (2, 8, 8, 3)
    assert scan_video_folder(tree) == dataset


def test_folder_tree_errors(tmp_path, tree):
    os.makedirs(tree / "empty_class")
    write_text_file(tree / "empty_class" / "notes.txt")
    with pytest.raises(ValueError, match="empty_class.*holds no videos"):
        scan_video_folder(tree)
    with pytest.raises(ValueError, match="no class folders"):
        scan_video_folder(tmp_path / "videos" / "run")
    with pytest.raises(ValueError, match="no such folder or manifest"):
        scan_dataset(tmp_path / "absent")


def write_hmdb_lists(split_dir, split, entries):
    os.makedirs(split_dir, exist_ok=True)
    for class_name, lines in entries.items():
        with open(split_dir / f"{class_name}_test_split{split}.txt", "w") as file:
            file.write("".join(f"{name} {code} \n" for name, code in lines))


def test_hmdb51_split_lists(tmp_path, tree):
    splits = tmp_path / "splits"
    write_hmdb_lists(splits, 1, {
        "walk": [("w1.mp4", 1), ("w2.avi", 2), ("w3.mkv", 0)],
        "run": [("r1.avi", 2), ("r2.mp4", 1)],
        "Jump": [("j1.mov", 1)],
    })
    write_hmdb_lists(splits, 2, {"walk": [("w1.mp4", 2)], "run": [], "Jump": []})
    dataset = scan_dataset(tree, split_dir=splits, split=1)
    assert dataset.splits == ("train", "test", "train", "train", "test", "unused")
    train = dataset.subset("train")
    assert [os.path.basename(path) for path in train.paths] == ["j1.mov", "r2.mp4", "w1.mp4"]
    assert train.labels == (0, 1, 2) and train.class_names == dataset.class_names
    # split 2 lists only w1 (as test); everything unlisted is unused
    assert scan_dataset(tree, split_dir=splits, split=2).splits == (
        "unused", "unused", "unused", "test", "unused", "unused")


def test_hmdb51_split_list_naming_missing_files(tmp_path, tree):
    splits = tmp_path / "splits"
    write_hmdb_lists(splits, 1, {"walk": [("w1.mp4", 1), ("gone.avi", 2)], "run": [], "Jump": []})
    with pytest.raises(ValueError, match=r"names 1 video\(s\) not found.*walk/gone.avi"):
        scan_video_folder(tree, split_dir=splits, split=1)
    write_hmdb_lists(splits, 1, {"walk": [("w1.mp4", 7)], "run": [], "Jump": []})
    with pytest.raises(ValueError, match="line 1: expected '<video file> <0|1|2>'"):
        scan_video_folder(tree, split_dir=splits, split=1)
    with pytest.raises(ValueError, match="no split lists for split 3"):
        scan_video_folder(tree, split_dir=splits, split=3)


def test_ucf101_split_lists(tmp_path, tree):
    splits = tmp_path / "ucfTrainTestlist"
    os.makedirs(splits)
    (splits / "trainlist01.txt").write_text("walk/w1.mp4 3\nrun/r1.avi 2\nJump/j1.mov 1\n")
    (splits / "testlist01.txt").write_text("walk/w2.avi\nrun/r2.mp4\n")
    dataset = scan_dataset(tree, split_dir=splits, split=1)
    assert dataset.splits == ("train", "train", "test", "train", "test", "unused")
    (splits / "testlist01.txt").write_text("walk/w2.avi\nrun/missing.avi\n")
    with pytest.raises(ValueError, match="run/missing.avi.*testlist01.txt"):
        scan_dataset(tree, split_dir=splits, split=1)


def test_manifest_with_header_splits_and_relative_paths(tmp_path):
    folder = tmp_path / "data"
    a = write_video(folder / "clips" / "a.mp4", num_frames=3)
    b = write_video(folder / "clips" / "b.avi", num_frames=3)
    c = write_video(tmp_path / "elsewhere" / "c.mkv", num_frames=3)
    manifest = folder / "manifest.csv"
    manifest.write_text(f"path,label,split\nclips/a.mp4,walk,train\n\nclips/b.avi,run,TEST\n{c},walk,val\n")
    dataset = read_manifest(manifest)
    assert dataset.paths == (a, b, c)
    assert dataset.class_names == ("run", "walk")
    assert dataset.labels == (1, 0, 1)
    assert dataset.splits == ("train", "test", "val")
    assert scan_dataset(manifest) == dataset


def test_manifest_integer_labels_sort_as_numbers(tmp_path):
    videos = [write_video(tmp_path / f"v{i}.mp4", num_frames=2) for i in range(3)]
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{videos[0]},10\n{videos[1]},2\n{videos[2]},0\n")
    dataset = read_manifest(manifest)
    assert dataset.class_names == ("0", "2", "10")
    assert dataset.labels == (2, 1, 0)
    assert dataset.splits is None


def test_manifest_errors_name_file_and_line(tmp_path):
    video = write_video(tmp_path / "v.mp4", num_frames=2)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\n{video},a\nnowhere/x.mp4,b\n")
    with pytest.raises(ValueError, match=r"m.csv, line 3: video 'nowhere/x.mp4' does not exist"):
        read_manifest(manifest)
    manifest.write_text(f"{video}\n")
    with pytest.raises(ValueError, match="line 1: expected 'path,label"):
        read_manifest(manifest)
    manifest.write_text(f"{video},a,holdout\n")
    with pytest.raises(ValueError, match="split must be one of"):
        read_manifest(manifest)
    manifest.write_text("path,label\n")
    with pytest.raises(ValueError, match="lists no videos"):
        read_manifest(manifest)
    other = write_video(tmp_path / "w.mp4", num_frames=2)
    manifest.write_text(f"{video},a,train\n{other},b\n")
    with pytest.raises(ValueError, match="some rows give a split"):
        read_manifest(manifest)


def test_manifest_duplicate_rows_are_refused_naming_both_lines(tmp_path):
    a = write_video(tmp_path / "clips" / "a.mp4", num_frames=2)
    b = write_video(tmp_path / "clips" / "b.mp4", num_frames=2)
    manifest = tmp_path / "m.csv"
    # The same file twice, once through a relative path with "./".
    manifest.write_text(f"path,label\n{a},walk\n{b},run\n./clips/a.mp4,walk\n")
    with pytest.raises(ValueError, match=r"m.csv: lines 2 and 4 both list .*a.mp4 \(duplicate rows"):
        read_manifest(manifest)


def test_manifest_video_in_two_splits_or_under_two_labels_is_a_leak(tmp_path):
    a = write_video(tmp_path / "a.mp4", num_frames=2)
    b = write_video(tmp_path / "b.mp4", num_frames=2)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"{a},walk,train\n{b},run,train\n\n{a},walk,test\n")
    with pytest.raises(
        ValueError, match=r"m.csv: lines 1 and 4 put .*a.mp4 in splits 'train' and 'test'"
    ):
        read_manifest(manifest)
    manifest.write_text(f"{a},walk\n{b},run\n{a},run\n")
    with pytest.raises(
        ValueError, match=r"m.csv: lines 1 and 3 give .*a.mp4 the labels 'walk' and 'run'"
    ):
        read_manifest(manifest)
    # A symbolic link to a listed video is the same video.
    os.symlink(a, tmp_path / "alias.mp4")
    manifest.write_text(f"{a},walk,train\n{b},run,train\nalias.mp4,walk,val\n")
    with pytest.raises(ValueError, match=r"lines 1 and 3 put .* in splits 'train' and 'val'"):
        read_manifest(manifest)


def test_manifest_with_utf8_bom_is_read(tmp_path):
    write_video(tmp_path / "a.mp4", num_frames=2)
    write_video(tmp_path / "b.mp4", num_frames=2)
    manifest = tmp_path / "m.csv"
    # Spreadsheet programs save "CSV UTF-8" with a byte order mark.
    manifest.write_bytes("path,label\r\na.mp4,walk\r\nb.mp4,run\r\n".encode("utf-8-sig"))
    dataset = read_manifest(manifest)
    assert [os.path.basename(path) for path in dataset.paths] == ["a.mp4", "b.mp4"]
    assert dataset.class_names == ("run", "walk") and dataset.labels == (1, 0)
    assert scan_dataset(manifest) == dataset  # what train.run and data.extract call
    # without a header, the BOM sits before the first video's name
    manifest.write_bytes("a.mp4,walk\nb.mp4,run\n".encode("utf-8-sig"))
    assert read_manifest(manifest) == dataset


@pytest.mark.parametrize("header, order", [
    ("video,class", (0, 1)),
    ("Filename,Category,Split", (0, 1, 2)),
    ("file,label", (0, 1)),
    ("class,video,split", (1, 0, 2)),
    ("split,category,path", (2, 1, 0)),
])
def test_manifest_header_spellings_are_read_as_headers(tmp_path, header, order):
    write_video(tmp_path / "a.mp4", num_frames=2)
    write_video(tmp_path / "b.mp4", num_frames=2)
    rows = [("a.mp4", "walk", "train"), ("b.mp4", "run", "test")]
    width = len(order)

    def line(fields):
        placed = [None] * width
        for column, field in zip(order, fields[:width]):
            placed[column] = field
        return ",".join(placed)

    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join([header] + [line(row) for row in rows]) + "\n")
    dataset = read_manifest(manifest)
    assert [os.path.basename(path) for path in dataset.paths] == ["a.mp4", "b.mp4"]
    assert dataset.class_names == ("run", "walk") and dataset.labels == (1, 0)
    assert dataset.splits == (("train", "test") if width == 3 else None)


def test_manifest_header_with_an_unknown_column_is_named(tmp_path):
    write_video(tmp_path / "a.mp4", num_frames=2)
    manifest = tmp_path / "m.csv"
    manifest.write_text("video,class,fold\na.mp4,walk,1\n")
    with pytest.raises(ValueError, match=r"m.csv, line 1: header column 'fold' is not one of"):
        read_manifest(manifest)


def test_manifest_short_row_under_a_reordered_header_is_named(tmp_path):
    write_video(tmp_path / "a.mp4", num_frames=2)
    manifest = tmp_path / "m.csv"
    manifest.write_text("split,category,path\ntrain,walk\n")
    with pytest.raises(ValueError, match=r"m.csv, line 2: expected 'split,label,path', got 'train,walk'"):
        read_manifest(manifest)


def test_symbolic_link_loops_are_skipped_with_a_warning_naming_them(tree, caplog):
    os.symlink("self.mp4", tree / "walk" / "self.mp4")  # points at itself
    os.symlink("pong.avi", tree / "run" / "ping.avi")  # two links in a circle
    os.symlink("ping.avi", tree / "run" / "pong.avi")
    os.symlink("gone.mp4", tree / "run" / "dangling.mp4")
    os.symlink("circle", tree / "circle")  # a class folder that is a loop
    os.symlink(".", tree / "again")  # a class folder that is the tree itself
    with caplog.at_level(logging.WARNING, logger="data.datasets"):
        dataset = scan_video_folder(tree)
    assert dataset.class_names == ("Jump", "run", "walk") and len(dataset) == 6
    warned = sorted(record.getMessage() for record in caplog.records)
    assert warned == sorted([
        f"skipping {tree / 'again'}: a symbolic link loop (it leads back to {tree})",
        f"skipping {tree / 'circle'}: a symbolic link loop",
        f"skipping {tree / 'run' / 'dangling.mp4'}: a broken symbolic link (to gone.mp4)",
        f"skipping {tree / 'run' / 'ping.avi'}: a symbolic link loop",
        f"skipping {tree / 'run' / 'pong.avi'}: a symbolic link loop",
        f"skipping {tree / 'walk' / 'self.mp4'}: a symbolic link loop",
    ])

"""Reading real videos written with cv2.VideoWriter."""

import dataclasses
import logging
import os

import numpy as np
import pytest

from data import video
from data.video import (
    VideoError,
    probe_video,
    read_clip,
    read_frames,
    sample_frame_indices,
    video_clip_dataset,
)
from tests.video_files import (
    BLUE,
    GREEN,
    decoded_index,
    frame_code,
    write_corrupt_video,
    write_text_file,
    write_truncated_video,
    write_video,
    write_zero_frame_video,
)


def test_sample_frame_indices_hand_computed():
    np.testing.assert_array_equal(sample_frame_indices(10, 4), [0, 3, 6, 9])
    # linspace(0, 99, 5) = 0, 24.75, 49.5, 74.25, 99 -> rounded down
    np.testing.assert_array_equal(sample_frame_indices(100, 5), [0, 24, 49, 74, 99])
    # shorter than asked: frames repeat, first and last kept
    np.testing.assert_array_equal(sample_frame_indices(3, 5), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(sample_frame_indices(1, 3), [0, 0, 0])
    assert len(sample_frame_indices(500)) == 64
    with pytest.raises(ValueError, match="frame_count"):
        sample_frame_indices(0, 4)


@pytest.mark.parametrize("name", ["clip.mp4", "clip.avi", "clip.mov", "clip.mkv", "clip.webm"])
def test_read_clip_samples_uniformly_in_rgb(tmp_path, name):
    path = write_video(tmp_path / name, num_frames=12, size=(29, 37))
    clip = read_clip(path, num_frames=5, size=(16, 20))
    assert clip.shape == (5, 16, 20, 3) and clip.dtype == np.uint8
    assert [decoded_index(frame) for frame in clip] == [0, 2, 5, 8, 11]
    # RGB order: red carries the index code, green 128, blue 40 (lossy codecs: +-6)
    np.testing.assert_allclose(clip[..., 0].mean(axis=(1, 2)),
                               [frame_code(i) for i in (0, 2, 5, 8, 11)], atol=6)
    np.testing.assert_allclose(clip[..., 1].mean(), GREEN, atol=6)
    np.testing.assert_allclose(clip[..., 2].mean(), BLUE, atol=6)


def test_odd_sizes_and_default_size(tmp_path):
    path = write_video(tmp_path / "odd.avi", num_frames=4, size=(29, 37))
    info = probe_video(path)
    # MJPG/yuv420 keeps even sizes: OpenCV writes 36x28 for 37x29
    assert (info.width, info.height) in ((36, 28), (37, 29))
    assert read_clip(path, num_frames=2, size=(17, 23)).shape == (2, 17, 23, 3)
    assert read_clip(path, num_frames=2, size=9).shape == (2, 9, 9, 3)
    assert read_clip(path, num_frames=2).shape == (2, 256, 256, 3)


def test_three_frame_video_repeats_frames(tmp_path):
    path = write_video(tmp_path / "three.mp4", num_frames=3)
    clip, info = read_clip(path, num_frames=8, size=(12, 12), return_info=True)
    assert [decoded_index(frame) for frame in clip] == [0, 0, 0, 0, 1, 1, 1, 2]
    assert info.frame_count == 3


def test_probe_video_fps_count_duration(tmp_path):
    path = write_video(tmp_path / "v.mp4", num_frames=15, fps=5.0)
    info = probe_video(path)
    assert info.frame_count == 15
    assert info.fps == pytest.approx(5.0)
    assert info.duration == pytest.approx(3.0)
    assert info.path == os.fspath(path)


def test_read_frames_with_fixed_indices(tmp_path):
    path = write_video(tmp_path / "v.avi", num_frames=10)
    frames, indices, _ = read_frames(path, [7, 2, 2], size=8)
    assert [decoded_index(frame) for frame in frames] == [7, 2, 2]
    np.testing.assert_array_equal(indices, [7, 2, 2])
    with pytest.raises(VideoError, match="past the end"):
        read_frames(path, [3, 10], size=8)


def test_inexact_header_is_resampled_over_decodable_frames(tmp_path, monkeypatch):
    path = write_video(tmp_path / "v.mp4", num_frames=20)
    real_header = video._header

    def one_frame_too_many(capture, path):
        info = real_header(capture, path)
        return dataclasses.replace(info, frame_count=info.frame_count + 1)

    monkeypatch.setattr(video, "_header", one_frame_too_many)
    # OpenCV's reader trusts the header first (PyAV counts the packets).
    clip, info = read_clip(path, num_frames=4, size=8, return_info=True, decoder="opencv")
    assert info.frame_count == 20
    assert [decoded_index(frame) for frame in clip] == [0, 6, 12, 19]


@pytest.mark.parametrize(
    "make, name, message",
    [
        (write_corrupt_video, "corrupt.mp4", "cannot be opened as a video"),
        (write_truncated_video, "truncated.mkv", "truncated or corrupt: the header reports 12"),
        (write_text_file, "notes.mp4", "cannot be opened as a video"),
        (write_zero_frame_video, "empty.avi", "no frames"),
    ],
)
def test_bad_files_raise_naming_the_path(tmp_path, make, name, message):
    path = make(tmp_path / name)
    with pytest.raises(VideoError, match=message) as error:
        read_clip(path, num_frames=4, size=8)
    assert str(error.value).startswith(os.fspath(path))
    assert isinstance(error.value, ValueError)


def test_missing_empty_directory_and_unreadable_paths(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        read_clip(tmp_path / "absent.mp4")
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="0 bytes"):
        read_clip(tmp_path / "zero.mp4")
    with pytest.raises(VideoError, match="directory"):
        read_clip(tmp_path)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    # Refused from its metadata: opening a FIFO with no writer would block.
    with pytest.raises(VideoError, match="not a regular file"):
        read_clip(fifo)


def test_unreadable_file_is_refused_naming_the_path(tmp_path, monkeypatch):
    locked = write_video(tmp_path / "locked.mp4", num_frames=3)
    os.chmod(locked, 0)
    # root reads a mode-000 file anyway: the permission check is what an
    # ordinary user meets, so it is asked as that user would be answered.
    real_access = os.access
    monkeypatch.setattr(
        os, "access",
        lambda path, mode, **kwargs: False if os.fspath(path) == os.fspath(locked)
        else real_access(path, mode, **kwargs),
    )
    try:
        with pytest.raises(VideoError, match="not readable \\(permission denied\\)") as error:
            read_clip(locked)
        assert str(error.value).startswith(os.fspath(locked))
    finally:
        os.chmod(locked, 0o644)


def test_video_clip_dataset_decodes_in_parallel_and_skips_bad_files(tmp_path, caplog):
    paths = [
        write_video(tmp_path / "a.mp4", num_frames=9),
        write_text_file(tmp_path / "bad.mp4"),
        write_video(tmp_path / "b.avi", num_frames=3),
        write_video(tmp_path / "c.mkv", num_frames=12),
    ]
    dataset = video_clip_dataset(paths, [0, 1, 1, 2], num_frames=4, size=(10, 14),
                                 num_parallel_calls=2)
    assert dataset.element_spec[0].shape == (4, 10, 14, 3)
    with caplog.at_level(logging.WARNING, logger="data.video"):
        elements = [(clip.numpy(), int(label)) for clip, label in dataset]
    assert [label for _, label in elements] == [0, 1, 2]
    # The skipped video is named, once, with what is wrong with it.
    warned = [record.getMessage() for record in caplog.records if record.name == "data.video"]
    assert warned == [f"skipping {paths[1]}: cannot be opened as a video (not a video, an "
                      "unsupported codec, or a corrupt file)"]
    assert all(clip.dtype == np.uint8 and clip.shape == (4, 10, 14, 3) for clip, _ in elements)
    assert [decoded_index(frame) for frame in elements[1][0]] == [0, 0, 1, 2]
    assert [decoded_index(frame) for frame in elements[2][0]] == [0, 3, 7, 11]


def test_video_clip_dataset_fail_names_the_file(tmp_path):
    from data.video import check_decoding, forget_decoding_errors

    forget_decoding_errors()
    paths = [write_video(tmp_path / "a.mp4", num_frames=4), write_text_file(tmp_path / "bad.mp4"),
             write_video(tmp_path / "c.mp4", num_frames=4)]
    dataset = video_clip_dataset(paths, [0, 1, 2], num_frames=2, size=8, on_error="fail",
                                 num_parallel_calls=1)
    assert [int(label) for _, label in dataset] == [0]  # the stream ends at the bad file
    with pytest.raises(VideoError, match="bad.mp4: cannot be opened as a video"):
        check_decoding()
    check_decoding()  # raised once
    with pytest.raises(ValueError, match="on_error"):
        video_clip_dataset(paths, [0, 1], on_error="ignore")
    with pytest.raises(ValueError, match="3 paths but 1 labels"):
        video_clip_dataset(paths, [0])

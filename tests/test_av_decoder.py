"""The PyAV reader against OpenCV's on the same files: same frame indices,
same pixels up to the decoders' rounding, and only the packets the wanted
frames need sent to the decoder."""

import os

import numpy as np
import pytest

from data import av_decoder
from data import video
from data.video import VideoError, read_frames
from tests.video_files import (
    decoded_index,
    frame_types,
    write_av_video,
    write_text_file,
    write_truncated_video,
    write_video,
)

# Lossy codecs at these sizes: both readers run FFmpeg's decoders, so the
# frames agree to the rounding of two FFmpeg builds.
PIXEL_TOLERANCE = 2
SIZE = (16, 24)


def top_index(frame):
    """The frame index coded in the top half (the band moves below)."""
    return decoded_index(frame[: frame.shape[0] // 2])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Tiny videos of 40 frames, keyframes every 12: H.264 with B-frames in
    MP4 and Matroska and without (as phones write it), MPEG-4 Part 2 with
    B-frames, and OpenCV's own mp4v and MJPG files."""
    folder = tmp_path_factory.mktemp("av")
    return {
        "h264.mp4": write_av_video(folder / "h264.mp4", "libx264"),
        "h264.mkv": write_av_video(folder / "h264.mkv", "libx264"),
        "h264_p.mp4": write_av_video(folder / "h264_p.mp4", "libx264", b_frames=0),
        "mpeg4.mp4": write_av_video(folder / "mpeg4.mp4", "mpeg4"),
        "mp4v.mp4": write_video(folder / "mp4v.mp4", num_frames=40, size=(32, 48)),
        "mjpg.avi": write_video(folder / "mjpg.avi", num_frames=40, size=(32, 48)),
    }


def test_the_inter_frame_files_have_b_frames_and_several_keyframes(files):
    # What the skipping below is tested on.
    assert frame_types(files["h264_p.mp4"]) == ("I" + "P" * 11) * 3 + "IPPP"
    for name in ("h264.mp4", "h264.mkv", "mpeg4.mp4"):
        types = frame_types(files[name])
        assert len(types) == 40 and types.count("I") >= 3 and types.count("B") >= 10, types


@pytest.mark.parametrize("name", ["h264.mp4", "h264.mkv", "h264_p.mp4", "mpeg4.mp4", "mp4v.mp4",
                                  "mjpg.avi"])
@pytest.mark.parametrize("indices", [
    [0, 13, 26, 39],            # sparse: every third keyframe interval
    [1, 2, 7, 7, 3, 38],        # B-frames, repeated and out of order
    list(range(40)),            # every frame
    lambda count: video.sample_frame_indices(count, 6),
])
def test_pyav_gives_opencvs_frames(files, name, indices):
    path = files[name]
    expected, expected_indices, expected_info = read_frames(path, indices, SIZE, decoder="opencv")
    frames, chosen, info = read_frames(path, indices, SIZE, decoder="pyav")
    np.testing.assert_array_equal(chosen, expected_indices)
    assert [top_index(frame) for frame in frames] == [i % 23 for i in chosen]
    assert frames.shape == expected.shape and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= PIXEL_TOLERANCE
    assert (info.frame_count, info.fps, info.width, info.height) == (
        expected_info.frame_count, expected_info.fps, expected_info.width, expected_info.height)


def decode_directly(path, wanted, **options):
    """The first decoding pass alone (no fall-back): {index: frame}, counts."""
    index = av_decoder.index_packets(path)
    presentation = index.presentation_pts
    wanted_pts = presentation[wanted]
    counts = {}
    frames = av_decoder.decode_packets(
        path, index, av_decoder.decode_plan(index, wanted_pts), wanted_pts,
        lambda frame: video.convert_frame(av_decoder.bgr(frame), SIZE), counts=counts, **options)
    by_index = {int(np.searchsorted(presentation, pts)): frame for pts, frame in frames.items()}
    return by_index, counts


@pytest.mark.parametrize("name", ["h264.mp4", "mpeg4.mp4"])
def test_sparse_frames_decode_without_the_frames_nothing_needs(files, name):
    path = files[name]
    wanted = [3, 15, 27, 39]  # each after a non-reference B-frame
    frames, counts = decode_directly(path, wanted)
    assert sorted(frames) == wanted  # every one out of the first pass
    assert [top_index(frame) for _, frame in sorted(frames.items())] == [i % 23 for i in wanted]
    # Non-reference B-frames that are not wanted are dropped by the
    # decoder: fewer frames come out than went in.
    assert counts["decoded"] < counts["sent"]
    if name == "h264.mp4":
        # Its keyframes are clean (closed GOPs): the stretches between the
        # wanted frames and the next keyframe are never sent. (The MPEG-4
        # file's B-frames after a keyframe refer back past it.)
        assert counts["sent"] == 17
    expected, _, _ = read_frames(path, wanted, SIZE, decoder="opencv")
    got = np.stack([frames[i] for i in wanted])
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= PIXEL_TOLERANCE


def test_the_plan_starts_at_the_keyframe_before_each_wanted_frame(files):
    index = av_decoder.index_packets(files["h264.mp4"])
    keyframes = np.flatnonzero(index.keyframe).tolist()
    assert keyframes == av_decoder.PacketIndex.clean_keyframes(index).tolist() == [0, 12, 24, 36]
    wanted_pts = index.presentation_pts[[13]]
    needed = av_decoder.decode_plan(index, wanted_pts)
    last = int(np.flatnonzero(index.pts == wanted_pts[0])[0])
    assert np.flatnonzero(needed).tolist() == list(range(12, last + 1))


def test_far_apart_frames_are_reached_by_seeking(files):
    wanted = [2, 26, 38]
    frames, counts = decode_directly(files["h264.mp4"], wanted, seek_gap=1)
    assert counts["seeks"] >= 2
    assert [top_index(frames[i]) for i in wanted] == [i % 23 for i in wanted]


def test_a_bad_plan_falls_back_to_decoding_everything(files, monkeypatch):
    # A plan that starts after the keyframe (as an open GOP would make it):
    # the missing frames are decoded again from the start.
    path = files["h264.mp4"]
    real_plan = av_decoder.decode_plan

    def late_start(index, wanted_pts):
        needed = real_plan(index, wanted_pts)
        needed[:14] = False
        return needed

    monkeypatch.setattr(av_decoder, "decode_plan", late_start)
    frames, _, _ = read_frames(path, [13, 20], SIZE, decoder="pyav")
    assert [top_index(frame) for frame in frames] == [13, 20]


def test_auto_takes_pyav_where_it_decodes_less(files, monkeypatch):
    used = []
    real_pyav, real_opencv = video._read_frames_pyav, video._read_frames_opencv
    monkeypatch.setattr(video, "_read_frames_pyav",
                        lambda *args: used.append("pyav") or real_pyav(*args))
    monkeypatch.setattr(video, "_read_frames_opencv",
                        lambda *args: used.append("opencv") or real_opencv(*args))
    calls = [
        # No B-frames, keyframes at 0, 12, 24, 36: 36 of the 40 packets
        # OpenCV decodes (0.9) are needed, then 37.
        ("h264_p.mp4", list(range(8)) + list(range(12, 36)) + [39]),
        ("h264_p.mp4", list(range(9)) + list(range(12, 36)) + [39]),
        ("h264.mp4", [0, 13, 26, 39]),  # 17 of 40 packets: keyframe stretches
        ("mjpg.avi", [0, 13, 26, 39]),  # all keyframes: only the 4 wanted
        ("mpeg4.mp4", [3, 15, 27, 39]),  # open GOPs, but B-frames to skip
        ("h264.mp4", list(range(40))),  # every frame: nothing to skip
        ("mpeg4.mp4", [i for i in range(40) if i % 4]),  # 3 in 4: too dense
        ("mjpg.avi", list(range(37)) + [39]),  # 38 of 40
    ]
    for name, indices in calls:
        frames, _, _ = read_frames(files[name], indices, SIZE)
        assert [top_index(frame) for frame in frames] == [i % 23 for i in indices]
    assert used == ["pyav", "opencv"] + ["pyav"] * 3 + ["opencv"] * 3
    monkeypatch.setenv("VIDEO_DECODER", "opencv")
    read_frames(files["h264.mp4"], [0, 39], SIZE)
    assert used[-1] == "opencv"
    monkeypatch.setenv("VIDEO_DECODER", "ffmpeg")
    with pytest.raises(ValueError, match="decoder must be one of auto, pyav, opencv, got 'ffmpeg'"):
        read_frames(files["h264.mp4"], [0], SIZE)


def test_bad_files_through_pyav_name_the_file(files, tmp_path):
    text = write_text_file(tmp_path / "notes.mp4")
    with pytest.raises(VideoError, match="PyAV cannot open it as a video") as error:
        read_frames(text, [0], SIZE, decoder="pyav")
    assert str(error.value).startswith(os.fspath(text))
    truncated = write_truncated_video(tmp_path / "truncated.mkv", num_frames=12)
    with pytest.raises(VideoError, match="truncated or corrupt: the header reports 12 frames"):
        read_frames(truncated, [0], SIZE, decoder="pyav")
    with pytest.raises(VideoError, match="frame index 40 is past the end \\(40 frames decode\\)"):
        read_frames(files["h264.mp4"], [3, 40], SIZE, decoder="pyav")
    with pytest.raises(VideoError, match="no such file"):
        read_frames(tmp_path / "absent.mp4", [0], SIZE, decoder="pyav")

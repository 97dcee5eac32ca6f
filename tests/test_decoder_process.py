"""data.decoder_process: files are decoded in a separate process first, and
a crash or a hang there is an undecodable file, not the end of the caller."""

import os
import time

import numpy as np
import pytest

from data import decoder_process
from data.video import VideoError
from tests import video_files
from tests.crashing_decoder import use_crashing_decoder


def test_a_real_file_that_aborts_the_decoder_is_an_undecodable_file(tmp_path):
    crashing = video_files.write_crashing_avi(str(tmp_path / "raw.avi"))
    good = video_files.write_video(str(tmp_path / "good.avi"), num_frames=5)
    decoder = decoder_process.DecoderProcess()
    try:
        try:
            decoder.check(crashing)
        except VideoError as error:  # OpenCV 4.13 crashes; a fixed decoder may read it
            # Heap corruption: usually SIGABRT, sometimes SIGBUS or SIGSEGV.
            assert str(error).startswith(f"{crashing}: could not be decoded: the decoder "
                                         "crashed on this file (SIG"), error
        # The next file gets a new decoder process.
        assert decoder.check(good).frame_count == 5
    finally:
        decoder.close()


@pytest.fixture
def stand_in_files(tmp_path, monkeypatch):
    """The stand-in decoder (its process, to close) and three files for it:
    one it crashes on, one it hangs on, and a good 4-frame video."""
    decoder = use_crashing_decoder(monkeypatch)
    crash = tmp_path / "crash.mp4"
    crash.write_bytes(b"CRASH" + bytes(100))
    hang = tmp_path / "hang.mp4"
    hang.write_bytes(b"HANG" + bytes(100))
    good = video_files.write_video(str(tmp_path / "good.mp4"), num_frames=4)
    return decoder, crash, hang, good


def test_crashes_and_hangs_of_the_stand_in_decoder(stand_in_files):
    decoder, crash, hang, good = stand_in_files
    try:
        with pytest.raises(VideoError, match="the decoder crashed on this file \\(SIGABRT\\)"):
            decoder_process.check_video(crash)
        assert decoder_process.check_video(good).frame_count == 4
        started = time.monotonic()
        with pytest.raises(VideoError, match="the decoder took longer than 1 s and was stopped"):
            decoder_process.check_video(hang, timeout=1)
        assert time.monotonic() - started < 30
        assert decoder_process.check_video(good).frame_count == 4
    finally:
        decoder.close()


@pytest.mark.parametrize("decoder", ["opencv", "pyav"])
def test_frames_read_in_the_decoder_process_are_those_read_here(decoder, tmp_path):
    import functools

    from data.features import frame_indices
    from data.video import read_frames

    path = video_files.write_av_video(str(tmp_path / "clip.mp4"), num_frames=30)
    indices = functools.partial(frame_indices, counts=[8, 6])
    here = read_frames(path, indices, (24, 32), decoder)
    there = decoder_process.read_frames(path, indices, (24, 32), decoder)
    np.testing.assert_array_equal(there[0], here[0])
    np.testing.assert_array_equal(there[1], here[1])
    assert there[2] == here[2]
    frames, chosen, _ = decoder_process.read_frames(path, [0, 29, 29], 16, decoder)
    assert frames.shape == (3, 16, 16, 3) and chosen.tolist() == [0, 29, 29]
    with pytest.raises(VideoError, match="frame index 30 is past the end"):
        decoder_process.read_frames(path, [30], 16, decoder)
    with pytest.raises(TypeError, match="functools.partial of a module-level function"):
        decoder_process.read_frames(path, lambda count: [0], 16, decoder)


def test_reads_that_crash_or_hang_the_decoder(stand_in_files, tmp_path):
    decoder, crash, hang, good = stand_in_files
    image = video_files.write_still_image(str(tmp_path / "photo.mp4"))
    try:
        with pytest.raises(VideoError, match="the decoder crashed on this file \\(SIGABRT\\)"):
            decoder_process.read_frames(crash, [0], 8)
        with pytest.raises(VideoError, match="the decoder took longer than 1 s and was stopped"):
            decoder_process.read_frames(hang, [0], 8, timeout=1)
        with pytest.raises(VideoError, match="a still image \\(PNG\\), not a video"):
            decoder_process.read_frames(image, [0], 8)
        assert decoder_process.read_frames(good, [0, 3], 8)[0].shape == (2, 8, 8, 3)
    finally:
        decoder.close()


def test_still_images_and_one_frame_files_are_not_videos(tmp_path):
    image = video_files.write_still_image(str(tmp_path / "photo.mp4"))
    with pytest.raises(VideoError, match="photo.mp4: a still image \\(PNG\\), not a video$"):
        decoder_process.check_video(image)
    one = video_files.write_video(str(tmp_path / "one.mp4"), num_frames=1)
    with pytest.raises(VideoError, match="1 frame only: a still image, not a video"):
        decoder_process.check_video(one)
    text = video_files.write_text_file(str(tmp_path / "notes.mp4"))
    with pytest.raises(VideoError, match="notes.mp4: cannot be opened as a video"):
        decoder_process.check_video(text)
    with pytest.raises(VideoError, match="no such file"):
        decoder_process.check_video(str(tmp_path / "none.mp4"))
    two = video_files.write_video(str(tmp_path / "two.mp4"), num_frames=2, fps=5.0)
    info = decoder_process.check_video(two)
    assert (info.frame_count, info.fps) == (2, 5.0)


def test_the_decoder_process_never_imports_tensorflow(tmp_path):
    # It runs `python -m data.decoder_process`: whatever data.video imports.
    import subprocess
    import sys

    code = ("import sys, data.decoder_process; "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            check=True).stdout
    assert output.strip() == "False"

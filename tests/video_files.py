"""Small real video files for tests, written with cv2.VideoWriter (or
PyAV, for the inter-frame codecs phones and cameras write).

Every frame is one solid colour: red carries the frame's index
(`frame_code`), green is 128 and blue 40, so a decoded frame tells which
frame it was (`decoded_index`) and whether the channels came back in RGB
order, even through lossy codecs.
"""

import os

import cv2
import numpy as np

from data import video

GREEN, BLUE = 128, 40


def frame_code(index):
    """The red value of frame `index` (distinct for 23 frames, then repeats)."""
    return 20 + 10 * (index % 23)


def decoded_index(frame):
    """Which frame an RGB frame written by `write_video` is (modulo 23)."""
    return int(round((float(np.mean(frame[..., 0])) - 20) / 10))


def write_video(path, num_frames=12, size=(29, 37), fps=10.0, fourcc=None):
    """Writes a video of solid frames; size is (height, width). Returns path."""
    height, width = size
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    frames[...] = (0, GREEN, BLUE)
    frames[..., 0] = np.array([frame_code(i) for i in range(num_frames)])[:, None, None]
    return video.write_video(path, frames, fps=fps, fourcc=fourcc)


def write_av_video(path, codec="libx264", num_frames=40, size=(32, 48), fps=10, gop=12,
                   b_frames=3, options=None):
    """Writes the frames of `write_video` with PyAV's encoder `codec`,
    keyframes every `gop` frames and up to `b_frames` B-frames between
    reference frames, plus a dark band in the bottom quarter that moves 3
    pixels a frame, so that frames are predicted from each other (read the
    index from the top half: `decoded_index(frame[:height // 2])`). x264 is run at its
    "ultrafast" preset: its slower presets turn these frames' colour jumps
    into P-frames only. Returns the path."""
    import av

    height, width = size
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        stream.codec_context.bit_rate = 4_000_000  # enough to keep each frame's colour
        stream.options = dict(options or ({"preset": "ultrafast"} if codec == "libx264" else {}))
        for index in range(num_frames):
            image = np.empty((height, width, 3), np.uint8)
            image[...] = (frame_code(index), GREEN, BLUE)
            band = (3 * index) % width
            image[height * 3 // 4:, band:band + 8] //= 2
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return os.fspath(path)


def frame_types(path):
    """The picture type of every frame of a file, in order: "I", "P", "B"."""
    import av

    with av.open(os.fspath(path)) as container:
        return "".join("?IPBS"[int(frame.pict_type)] for frame in container.decode(video=0))


def cut_file(path, keep):
    """Keeps the first `keep` fraction of a file's bytes."""
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[: int(len(data) * keep)])
    return os.fspath(path)


def write_truncated_video(path, num_frames=12, keep=0.5):
    """An MJPG .mkv whose header promises `num_frames` but whose data stops
    part way: it opens, and decoding ends early."""
    return cut_file(write_video(path, num_frames=num_frames, fourcc="MJPG"), keep)


def write_corrupt_video(path):
    """A real .mp4 with its second half cut off (its index goes with it)."""
    return cut_file(write_video(path, num_frames=12), 0.5)


def write_zero_frame_video(path):
    """A container opened and closed without a single frame written."""
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
    writer.release()
    return os.fspath(path)


def write_crashing_avi(path, num_frames=3, size=(24, 32)):
    """An uncompressed 24-bit AVI (BI_RGB frames, no codec) of noise, 2.4 KB
    for 3 frames of 24x32: OpenCV 4.13's FFmpeg crashes the process that
    decodes it (usually `malloc_consolidate(): invalid chunk size`, SIGABRT;
    now and then SIGBUS). Returns path."""
    import struct

    def chunk(tag, data):
        return tag + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    height, width = size
    frame_bytes = ((width * 3 + 3) & ~3) * height
    main_header = struct.pack("<14I", 100_000, 0, 0, 0x10, num_frames, 0, 1, frame_bytes,
                              width, height, 0, 0, 0, 0)
    stream_header = b"vids" + b"\0\0\0\0" + struct.pack(
        "<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, 10, 0, num_frames, frame_bytes, 0xFFFFFFFF, 0,
        0, 0, width, height)
    bitmap_header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, frame_bytes,
                                0, 0, 0, 0)
    header_list = chunk(b"LIST", b"hdrl" + chunk(b"avih", main_header) + chunk(
        b"LIST", b"strl" + chunk(b"strh", stream_header) + chunk(b"strf", bitmap_header)))
    noise = np.random.default_rng(0).integers(0, 255, (num_frames, frame_bytes), dtype=np.uint8)
    movie = chunk(b"LIST", b"movi" + b"".join(chunk(b"00db", frame.tobytes()) for frame in noise))
    body = b"AVI " + header_list + movie
    with open(path, "wb") as file:
        file.write(b"RIFF" + struct.pack("<I", len(body)) + body)
    return os.fspath(path)


def write_still_image(path, size=(24, 32)):
    """A PNG image, whatever its name says (e.g. `photo.mp4`)."""
    ok, data = cv2.imencode(".png", np.full((*size, 3), 90, np.uint8))
    with open(path, "wb") as file:
        file.write(data.tobytes())
    return os.fspath(path)


def write_text_file(path, text="this is not a video\n"):
    """A text file, whatever its name says."""
    with open(path, "w") as file:
        file.write(text)
    return os.fspath(path)


def write_class_tree(root, layout, num_frames=6, size=(24, 32)):
    """Writes `root/<class>/<name>` videos; layout maps class -> file names.

    Returns the sorted list of written paths.
    """
    paths = []
    for class_name, names in layout.items():
        os.makedirs(os.path.join(root, class_name), exist_ok=True)
        for name in names:
            paths.append(write_video(os.path.join(root, class_name, name), num_frames, size))
    return sorted(paths)

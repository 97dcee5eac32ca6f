"""Decoding chosen frames with FFmpeg's own library, through PyAV.

OpenCV's reader decodes every frame up to the last one asked for: it can
neither skip a frame nor tell which frames others depend on. This reader
reads the file twice:

1. An index pass reads the packets without decoding them: their
   timestamps (the presentation order: frame `i` is the packet with the
   `i`-th smallest timestamp, which is how a decoder outputs frames and
   how OpenCV counts them) and which of them are keyframes.
2. The decode pass gives the decoder only what the wanted frames need:
   - the packets from the last clean keyframe before a wanted frame up to
     that frame (a keyframe is clean when no later packet is shown before
     it, so nothing after it refers back past it); packets between two
     such stretches are not decoded at all, and a gap of more than
     `SEEK_GAP_PACKETS` is sought over instead of read through;
   - inside a stretch, a packet that is not wanted is decoded with
     `skip_frame = "NONREF"`: a frame that no other frame refers to (a
     non-reference B-frame) is dropped unread.
   The decoder runs FFmpeg's frame and slice threads.

Every wanted frame is then checked to have come out, by its timestamp;
should one be missing (a keyframe that was not a clean start after all),
the frames are decoded again from the start of the file without skipping
anything. Frames are converted as OpenCV's are (BGR first, then
`data.video.convert_frame`), so both readers give the same pixels up to
the decoders' rounding (tests/test_av_decoder.py).

`data.video.read_frames` is the reader every command uses; it calls
`index_packets`, `decode_plan` and `decode_frames` here where PyAV pays
off (`data.video.pyav_pays_off`), and decodes with OpenCV otherwise and
for a file PyAV cannot index exactly (packets without timestamps, or two
with the same).
"""

import dataclasses

import av
import numpy as np

# Threads of FFmpeg's decoder: 0 lets FFmpeg choose (one per core).
DEFAULT_THREADS = 0
# Packets not needed in a row beyond which the decode pass seeks instead of
# reading them (10 s at 25 fps; reading a packet without decoding it costs
# microseconds, a seek drains the decoder's threads).
SEEK_GAP_PACKETS = 250


@dataclasses.dataclass(frozen=True)
class PacketIndex:
    """The video packets of a file, in decode order.

    Args:
        pts, dts: presentation and decode timestamps (stream time base).
        keyframe: whether each packet is a keyframe.
        shown: False for a packet the container marks as decoded but not
            shown (the pre-roll before an edit list's start).
        codec: FFmpeg's name of the codec ("h264", "hevc", "mpeg4", ...).
        header_frames: the frame count the header reports (0 if none).
        fps, width, height: from the header.
    """

    pts: np.ndarray
    dts: np.ndarray
    keyframe: np.ndarray
    shown: np.ndarray
    codec: str
    header_frames: int
    fps: float
    width: int
    height: int

    @property
    def presentation_pts(self):
        """Timestamps of the shown frames, in presentation order."""
        return np.sort(self.pts[self.shown])

    def clean_keyframes(self):
        """Decode positions of the keyframes decoding can start afresh
        from: no packet after one is shown before it."""
        later_min = np.minimum.accumulate(self.pts[::-1])[::-1]
        later_min = np.append(later_min[1:], np.iinfo(np.int64).max)
        return np.flatnonzero(self.keyframe & (later_min >= self.pts))


def _open(path):
    """The PyAV container of a file with a video stream, or None."""
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None
    if not container.streams.video:
        container.close()
        return None
    return container


def index_packets(path):
    """The `PacketIndex` of a file, or None when PyAV cannot open it as a
    video or cannot index it exactly (a packet without a timestamp, two
    packets with one timestamp)."""

    container = _open(path)
    if container is None:
        return None
    try:
        stream = container.streams.video[0]
        pts, dts, keyframe, shown = [], [], [], []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                dts.append(packet.pts if packet.dts is None else packet.dts)
                keyframe.append(packet.is_keyframe)
                shown.append(not packet.is_discard)
        except av.error.FFmpegError:
            pass  # a damaged tail: the packets read so far stand
        pts = np.asarray(pts, np.int64)
        if len(np.unique(pts)) != len(pts):
            return None
        try:  # a codec this FFmpeg build demuxes but cannot decode
            av.codec.Codec(stream.codec_context.name, "r")
        except av.codec.codec.UnknownCodecError:
            return None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        header = int(stream.frames or 0)
        if header == 0 and fps > 0:
            # Matroska and WebM headers give no count: estimate it from the
            # duration, as OpenCV does.
            if stream.duration:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = (container.duration or 0) / 1e6
            header = int(round(seconds * fps))
        context = stream.codec_context
        return PacketIndex(
            pts, np.asarray(dts, np.int64), np.asarray(keyframe, bool), np.asarray(shown, bool),
            context.name, header, fps, int(context.width), int(context.height),
        )
    finally:
        container.close()


def decode_plan(index, wanted_pts):
    """Which packets (decode order) the decoder needs for the frames with
    timestamps `wanted_pts`: a bool mask over `index.pts`."""
    position = {int(p): i for i, p in enumerate(index.pts)}
    clean = index.clean_keyframes()
    needed = np.zeros(len(index.pts), bool)
    for pts in wanted_pts:
        end = position[int(pts)]
        before = np.searchsorted(clean, end, side="right") - 1
        start = int(clean[before]) if before >= 0 else 0
        needed[start:end + 1] = True
    return needed


def iter_decoded(path, index, needed, wanted_pts, threads=DEFAULT_THREADS, skip=True,
                 seek_gap=SEEK_GAP_PACKETS, counts=None):
    """Decodes the packets marked in `needed` (decode order of `index`) and
    yields `(pts, frame)` for each frame whose timestamp is in
    `wanted_pts`, once, as the decoder gives them out (in presentation
    order).

    With `skip`, packets that are not wanted are decoded with
    `skip_frame = "NONREF"`. Where more than `seek_gap` packets in a row
    are not needed, the file is sought to the next needed one (always a
    clean keyframe) instead of being read through. `counts`, a dict, gets
    "sent" (packets given to the decoder), "decoded" (frames it returned)
    and "seeks". A damaged packet or tail ends nothing: its frames are
    just not yielded."""
    wanted = set(int(p) for p in wanted_pts)
    position_of = {int(p): i for i, p in enumerate(index.pts)}
    needed_positions = np.flatnonzero(needed)
    last = int(needed_positions[-1])
    yielded = set()
    counts = {} if counts is None else counts
    counts.update(sent=0, decoded=0, seeks=0)

    def wanted_of(decoded):
        for frame in decoded:
            counts["decoded"] += 1
            if frame.pts in wanted and frame.pts not in yielded:
                yielded.add(frame.pts)
                yield frame.pts, frame

    container = av.open(path, metadata_errors="ignore")
    try:
        stream = container.streams.video[0]
        context = stream.codec_context
        context.thread_type = "AUTO"
        context.thread_count = int(threads)
        mode = None
        done = -1  # the last position decoded or passed: a seek may land before it
        sought = -1  # the last position sought to: never twice (a seek may fall short)
        packets = container.demux(stream)
        try:
            while True:
                packet = next(packets, None)
                if packet is None:
                    break
                position = None if packet.pts is None else position_of.get(int(packet.pts))
                if packet.size == 0 or position is None or position <= done:
                    continue
                done = position
                if needed[position]:
                    want = "DEFAULT" if not skip or packet.pts in wanted else "NONREF"
                    if want != mode:
                        context.skip_frame = mode = want
                    counts["sent"] += 1
                    try:
                        decoded = context.decode(packet)
                    except av.error.InvalidDataError:
                        decoded = []  # a damaged packet: its frame will be missing
                    yield from wanted_of(decoded)
                if position >= last:
                    break
                following = needed_positions[np.searchsorted(needed_positions, position, "right")]
                if following - position > seek_gap and following > sought:
                    sought = int(following)
                    # Seeking drops the frames still in the decoder's threads.
                    yield from wanted_of(context.decode(None))
                    container.seek(int(index.dts[following]), stream=stream)
                    counts["seeks"] += 1
                    packets = container.demux(stream)
        except av.error.FFmpegError:
            pass  # a damaged tail: whatever decoded stands
        try:
            drained = context.decode(None)
        except av.error.FFmpegError:
            drained = []
        yield from wanted_of(drained)
    finally:
        container.close()


def decode_packets(path, index, needed, wanted_pts, convert, threads=DEFAULT_THREADS,
                   skip=True, seek_gap=SEEK_GAP_PACKETS, counts=None):
    """`{pts: convert(frame)}` of the frames `iter_decoded` gives (see
    there for the arguments)."""
    return {pts: convert(frame) for pts, frame in iter_decoded(
        path, index, needed, wanted_pts, threads, skip, seek_gap, counts)}


def decode_frames(path, index, wanted_pts, convert, threads=DEFAULT_THREADS, counts=None,
                  needed=None):
    """`{pts: convert(frame)}` of the frames with timestamps `wanted_pts`,
    decoding only what they need (`decode_plan`, `decode_packets`); if a
    frame is missing, everything up to the last wanted frame is decoded
    again without skipping. A frame that still does not decode is absent
    from the result. `counts`: see `decode_packets` (of the last pass);
    `needed`: the plan when the caller has it already."""
    if needed is None:
        needed = decode_plan(index, wanted_pts)
    frames = decode_packets(path, index, needed, wanted_pts, convert, threads, counts=counts)
    if len(frames) < len(wanted_pts):
        everything = np.zeros(len(index.pts), bool)
        everything[:int(np.flatnonzero(np.isin(index.pts, wanted_pts))[-1]) + 1] = True
        frames = decode_packets(path, index, everything, wanted_pts, convert, threads, skip=False,
                                counts=counts)
    return frames


def bgr(frame):
    """A decoded frame as OpenCV's reader gives it: BGR uint8 [H, W, 3]."""
    return frame.to_ndarray(format="bgr24")


__all__ = ["DEFAULT_THREADS", "PacketIndex", "SEEK_GAP_PACKETS", "bgr", "decode_frames",
           "decode_packets", "decode_plan", "index_packets", "iter_decoded"]

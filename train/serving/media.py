"""Videos that browsers play, written for results.

VP9 in MP4 plays in every current browser; when this OpenCV build has no
VP9 encoder, MPEG-4 Part 2 is written instead (it plays in desktop players,
not in browsers) and the result says so.
"""

from data.video import write_video

BROWSER_FOURCC = "vp09"
FALLBACK_FOURCC = "mp4v"


def write_browser_video(path, frames, fps, what="video"):
    """Writes RGB uint8 frames (a sequence, or a callable returning an
    iterator so that they can be produced twice) to `path`; returns
    `(codec, note)`, the note saying why the file may not play in a
    browser (None when it does)."""
    produce = frames if callable(frames) else (lambda: iter(frames))
    try:
        write_video(path, produce(), fps=fps, fourcc=BROWSER_FOURCC)
        return BROWSER_FOURCC, None
    except RuntimeError:
        write_video(path, produce(), fps=fps, fourcc=FALLBACK_FOURCC)
        return FALLBACK_FOURCC, (f"this OpenCV has no VP9 encoder; the {what} is MPEG-4 "
                                 "Part 2, which browsers do not play")

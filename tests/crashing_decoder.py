"""A stand-in decoder process (`data.decoder_process`) for tests.

It aborts, as OpenCV's FFmpeg does on some files, on a file whose first
bytes are `CRASH`, and never answers about a file whose first bytes are
`HANG`, whether asked to check it or to read its frames; any other file
it decodes as the real decoder process does.
`use_crashing_decoder(monkeypatch)` makes it the decoder of the test's
process.
"""

import os
import sys
import time

from data import decoder_process


def misbehave(path):
    with open(path, "rb") as file:
        head = file.read(5)
    if head == b"CRASH":
        os.abort()
    if head.startswith(b"HANG"):
        time.sleep(3600)


def decode(path):
    misbehave(path)
    return decoder_process.decode_file(path)


def read(request):
    misbehave(request["path"])
    return decoder_process.read_file(request)


def use_crashing_decoder(monkeypatch):
    """Makes the stand-in the shared decoder process until the test ends;
    returns it."""
    decoder = decoder_process.DecoderProcess([sys.executable, "-m", "tests.crashing_decoder"])
    monkeypatch.setattr(decoder_process, "_shared", decoder)
    return decoder


if __name__ == "__main__":
    decoder_process.serve(decode, read=read)

"""The page's upload limit at exactly the limit and one byte over.

The app is called in-process through ASGI (no server, no model: the run's
model never loads, and an accepted upload named `.txt` is refused with 415
after it has been read, which tells an accepted size from a refused one).
"""

import asyncio
import json
import uuid

import pytest

from train import app as cli
from train.serving import app as app_lib

LIMIT = 3000  # bytes: the whole request body counts


@pytest.fixture
def page(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "convlstm", "config": {}}))
    (run / "best.keras").write_bytes(b"")
    monkeypatch.setattr(app_lib.ModelHolder, "start", lambda self: self)  # no model
    return app_lib.create_app(str(run), out=str(tmp_path / "out"), max_upload_bytes=LIMIT)


def multipart(total):
    """A multipart body of exactly `total` bytes holding one file."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="video"; '
            f'filename="notes.txt"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = head + b"x" * (total - len(head) - len(tail)) + tail
    assert len(body) == total
    return body, f"multipart/form-data; boundary={boundary}"


def call(app, method, path, headers, body=b"", chunk=512):
    """(status, JSON) of one request to the ASGI app, the body sent in chunks."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
    }
    parts = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [{"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
                for i, part in enumerate(parts)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(content)


def post(app, body, content_type, length="actual", chunk=512):
    """(status, JSON) of a POST to /api/predict from the page itself (its
    origin and token), the body sent in chunks. `length` is the
    Content-Length header: the body's own by default, a number, or None for
    no header."""
    host = [(b"host", b"127.0.0.1")]
    _, state = call(app, "GET", "/api/status", host)
    headers = host + [(b"origin", b"http://127.0.0.1"),
                      (app_lib.TOKEN_HEADER.encode(), state["token"].encode()),
                      (b"content-type", content_type.encode())]
    if length == "actual":
        length = len(body)
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return call(app, "POST", "/api/predict", headers, body, chunk)


@pytest.mark.parametrize("length", ["actual", None], ids=["declared", "counted"])
def test_an_upload_of_exactly_the_limit_is_read(page, length):
    status, body = post(page, *multipart(LIMIT), length=length)
    assert status == 415 and body["error"].startswith("notes.txt: not a video file")


@pytest.mark.parametrize("length", ["actual", None], ids=["declared", "counted"])
def test_one_byte_over_the_limit_is_refused(page, length):
    status, body = post(page, *multipart(LIMIT + 1), length=length)
    assert status == 413 and "limit" in body["error"]


def test_a_body_longer_than_it_declares_is_counted(page):
    # The header claims the limit; one byte more arrives.
    status, body = post(page, *multipart(LIMIT + 1), length=LIMIT)
    assert status == 413 and body["error"] == "the upload is over the limit of 0.00286102 MB"


def test_counting_stops_at_the_first_byte_over():
    async def read(limit):
        async def chunks():
            for size in (1000, 1000, 1000, 1, 1000):
                yield b"x" * size

        got = []
        try:
            async for chunk in app_lib._counted(chunks(), limit, "upload"):
                got.append(len(chunk))
        except app_lib.UploadTooLarge:
            got.append("refused")
        return got

    assert asyncio.run(read(4001)) == [1000, 1000, 1000, 1, 1000]
    assert asyncio.run(read(4000)) == [1000, 1000, 1000, 1, "refused"]
    assert asyncio.run(read(3001)) == [1000, 1000, 1000, 1, "refused"]
    assert asyncio.run(read(3000)) == [1000, 1000, 1000, "refused"]

    async def refusal():
        async def chunks():
            yield b"x" * 10

        async for _ in app_lib._counted(chunks(), 5, "upload"):
            pass

    with pytest.raises(app_lib.UploadTooLarge) as refused:
        asyncio.run(refusal())
    assert refused.value.args == ("upload",)


class Stop(Exception):
    """Raised by a stand-in create_app: main has checked its flags."""


@pytest.fixture
def started(monkeypatch):
    """main's call of create_app, recorded instead of serving."""
    made = {}

    def create_app(run, out, videos, max_upload_bytes, options=None, **settings):
        made.update(run=run, out=out, videos=videos, bytes=max_upload_bytes, options=options,
                    **settings)
        raise Stop

    monkeypatch.setattr(cli, "create_app", create_app)
    return made


def test_the_limit_is_given_in_mebibytes(started):
    for flags, expected in (([], 200 * 2**20), (["--max-upload-mb", "1.5"], 1_572_864),
                            (["--max-upload-mb", "0.5"], 524_288)):
        with pytest.raises(Stop):
            cli.main(["--run", "r", *flags])
        assert started["bytes"] == expected


def test_the_results_limit_is_given_in_mebibytes(started):
    """Guards the conversion of --max-results-mb to the bytes the page
    keeps, as the upload limit is converted."""
    for flags, expected in (([], 1000 * 2**20), (["--max-results-mb", "1.5"], 1_572_864)):
        with pytest.raises(Stop):
            cli.main(["--run", "r", *flags])
        assert started["max_results_bytes"] == expected


@pytest.mark.parametrize("flags, message", [
    (["--max-upload-mb", "0"], "--max-upload-mb must be a number of MB > 0, got 0.0"),
    (["--max-upload-mb", "-1"], "--max-upload-mb must be a number of MB > 0, got -1.0"),
    (["--port", "-1"], "--port must be in 0..65535, got -1"),
    (["--port", "65536"], "--port must be in 0..65535, got 65536"),
    (["--videos", "no/such/folder"], "--videos no/such/folder: no such folder"),
])
def test_bad_flags_are_refused_before_the_app_starts(started, flags, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        cli.main(["--run", "r", *flags])
    assert started == {}


def test_main_passes_its_flags_to_the_app(started, tmp_path):
    for port in ("0", "65535"):
        with pytest.raises(Stop):
            cli.main(["--run", "r", "--out", "o", "--videos", str(tmp_path), "--port", port,
                          "--explain"])
        assert started == {"run": "r", "out": "o", "videos": str(tmp_path), "bytes": 200 * 2**20,
                           "options": {"explain": True}, "max_results_bytes": 1000 * 2**20,
                           "allowed_hosts": ["127.0.0.1", "::1", "localhost"]}


def test_main_passes_the_host_names_the_page_answers_for(started):
    """Guards that the host main listens on and every --allow-host reach
    the page's host check."""
    with pytest.raises(Stop):
        cli.main(["--run", "r", "--host", "10.0.0.5", "--allow-host", "box.lan"])
    assert started["allowed_hosts"] == ["10.0.0.5", "127.0.0.1", "::1", "box.lan", "localhost"]


def test_the_page_states_the_limit_in_megabytes(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "convlstm", "config": {}}))
    (run / "best.keras").write_bytes(b"")
    monkeypatch.setattr(app_lib.ModelHolder, "start", lambda self: self)
    app = app_lib.create_app(str(run), out=str(tmp_path / "out"))  # the default limit
    body, content_type = multipart(LIMIT)
    status, answer = post(app, body, content_type)
    assert status == 415  # far under 200 MiB
    # Refused from its header alone, before any byte is read.
    status, answer = post(app, body, content_type, length=200 * 2**20 + 1)
    assert status == 413
    assert answer["error"] == "the upload is 200.0 MB; the limit is 200 MB"
    status, answer = post(app, body, content_type, length=200 * 2**20)
    assert status == 415

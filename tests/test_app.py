"""train.app: the page, uploads and their refusals, and a real browser.

The server runs in a thread of the test on 127.0.0.1 (a free port). The
browser test drives Debian's headless Chromium through selenium; without
chromium, chromedriver or selenium it is skipped, saying which is missing.
`VIDEO_SUITE_SCREENSHOT=path.png` keeps a screenshot of the page.
"""

import http.client
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from common.cli import run_main
from tests import video_files
from tests.page_browser import BrowserMissing, StageGate, start_browser, wait_for
from tests.prediction_fixtures import keyframe_run, make_run, write_scene_video
from train import app as app_cli
from train.serving import app as app_lib

# One worker runs the module: its module-scoped runs are built once.
pytestmark = pytest.mark.xdist_group("test_app")


_tokens = {}


def page_token(url):
    """The page's token, as the page's own script reads it."""
    base = url.split("/api/")[0]
    if base not in _tokens:
        _, _, body = get(base + "/api/status")
        _tokens[base] = json.loads(body)["token"]
    return _tokens[base]


def post(url, body, content_type, chunked=False, headers=None):
    """(status, JSON) of a POST, sent as the page sends it (its origin and
    its token) unless `headers` says otherwise (a value of None leaves that
    header out). Sent over a plain socket: a server may answer (413) before
    it has read the whole body and close, which urllib reports as a broken
    pipe instead of the answer. `chunked` sends the body without a
    Content-Length."""
    parts = urllib.parse.urlsplit(url)
    sent = {"Host": parts.netloc, "Origin": f"http://{parts.netloc}",
            "X-Page-Token": page_token(url), **(headers or {})}
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        length = ("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
        extra = "".join(f"{name}: {value}\r\n" for name, value in sent.items() if value is not None)
        head = (f"POST {parts.path} HTTP/1.1\r\n{extra}"
                f"Content-Type: {content_type}\r\n{length}\r\nConnection: close\r\n\r\n")
        if chunked:
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        try:
            sock.sendall(head.encode() + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, json.loads(response.read())


def upload(url, name, data, field="video", chunked=False, headers=None):
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return post(url + "/api/predict", body, f"multipart/form-data; boundary={boundary}", chunked,
                headers)


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, response.read()


def get_status(url, headers=None):
    """(status, headers, body) of a GET, error statuses included."""
    try:
        return get(url, headers)
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


# A space in the server's folders: paths must not leak past it.
SPACED = "app folder"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp(SPACED)


@pytest.fixture(scope="module")
def clip(folder):
    path = str(folder / "clip.mp4")
    write_scene_video(path, seconds=6.0, fps=25.0, scenes=4, size=(144, 256))
    return path


@pytest.fixture(scope="module")
def summary_server(folder):
    app = app_lib.create_app(keyframe_run(str(folder / "keyframe_run")), out=str(folder / "out"),
                             max_upload_bytes=2 * 2**20)
    with app_lib.serve_in_thread(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def classifier_server(folder, clip):
    run = make_run(str(folder / "convlstm_run"), "convlstm", {"data": "synthetic"},
                   ["a", "b", "c", "d", "e", "f"], input_shape=(4, 12, 12, 3), num_classes=6)
    videos = folder / "videos"
    videos.mkdir()
    shutil.copy(clip, videos / "clip.mp4")
    app = app_lib.create_app(run, out=str(folder / "out_convlstm"), videos=str(videos),
                             options={"window": 2.0, "stride": 1.0, "explain": True})
    with app_lib.serve_in_thread(app) as url:
        yield url, app


def test_the_page_works_offline(summary_server):
    url, _ = summary_server
    status, headers, body = get(url + "/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "keyframe_transformer" in page and 'type="file"' in page
    # No asset from elsewhere: no external src/href, no stylesheet or script file.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "<script src" not in page


def test_uploads_are_predicted_and_refused_with_a_message(summary_server, clip, tmp_path):
    url, app = summary_server
    status, body = upload(url, "notes.txt", b"hello")
    assert status == 415 and body["error"].startswith("notes.txt: not a video file (expected .mp4")
    status, body = upload(url, "fake.mp4", b"this is not a video\n" * 10)
    assert status == 415 and body["error"].startswith("fake.mp4: cannot be opened as a video")
    status, body = upload(url, "big.mp4", os.urandom(3 * 2**20))
    assert status == 413 and "the limit is 2 MB" in body["error"]
    status, body = upload(url, "big.mp4", os.urandom(3 * 2**20), chunked=True)  # bytes counted
    assert status == 413 and "over the limit of 2 MB" in body["error"]
    assert os.listdir(os.path.join(app.state.root, "uploads")) == []
    status, body = post(url + "/api/predict", b"{}", "application/json")
    assert status == 400 and "multipart/form-data" in body["error"]
    # The server's folders, spaces in their names or not, are never shown.
    shown = [app_lib.without_paths(f"cannot open {path}/x.mp4 (gone)", roots=app_lib.server_roots(
        path)) for path in (app.state.root, os.path.join(app.state.root, "uploads"))]
    assert shown == ["cannot open x.mp4 (gone)"] * 2

    with open(clip, "rb") as file:
        status, result = upload(url, "my clip.mp4", file.read())
    assert status == 200, result
    assert result["frame_count"] == 150 and len(result["shots"]) >= 1
    root = app.state.root
    assert result["urls"]["summary_video"] == "/media/my_clip/summary.mp4"
    # No path of the server: the video by its name, files by their URLs.
    assert result["video"] == "my clip.mp4" and "files" not in result
    assert os.path.isfile(os.path.join(root, "my_clip", "summary.mp4"))
    assert not re.search(r'"/(?!media/)', json.dumps(result)), result
    # (The run is named by its last two folders, as the page heads itself.)
    assert SPACED not in json.dumps({**result, "run": None})
    # Browsers fetch videos in ranges.
    status, headers, part = get(url + result["urls"]["summary_video"], {"Range": "bytes=0-99"})
    assert status == 206 and len(part) == 100
    for keyframe in result["keyframes"]:
        _, _, data = get(url + keyframe["url"])
        assert data[:2] == b"\xff\xd8"  # JPEG
    # A second result never replaces the first; the uploads are not kept.
    with open(clip, "rb") as file:
        status, again = upload(url, "my clip.mp4", file.read())
    assert status == 200 and again["urls"]["summary_video"] == "/media/my_clip-2/summary.mp4"
    assert os.listdir(os.path.join(root, "uploads")) == []


def test_a_video_already_running_is_joined_not_run_twice(summary_server, clip):
    url, app = summary_server
    root = app.state.root
    with open(clip, "rb") as file:
        data = file.read()
    later = {"Prefer": "respond-async"}
    decoding = "decoding and scoring frames"
    with StageGate(app.state.jobs, "twice.mp4", [decoding]) as gate:
        status, first = upload(url, "twice.mp4", data, headers=later)
        assert status == 202 and first["state"] == "running" and not first["joined"]
        gate.wait(decoding)
        # Where the job is comes from the prediction itself.
        job = json.loads(get(url + f"/api/jobs/{first['job']}")[2])
        assert job["stage"] == decoding and (job["done"], job["total"]) == (1, 150)
        assert [entry["stage"] for entry in job["stages"]] == [
            "checking the video", "waiting for the model", decoding]
        # The same bytes again, by another name: the running job, not a second one ...
        status, second = upload(url, "again.mp4", data, headers=later)
        assert status == 202 and second["joined"] and second["job"] == first["job"]
        assert second["video"] == "twice.mp4"
        # ... also for a script that waits for the result.
        waited = []
        thread = threading.Thread(target=lambda: waited.append(upload(url, "again.mp4", data)))
        thread.start()
        running = app.state.jobs.get(first["job"])
        deadline = time.time() + 60
        while running.joins < 2 and time.time() < deadline:
            time.sleep(0.02)
        assert running.joins == 2
        # The waiting joiner's copy and its upload slot are gone at once:
        # only the running job's upload is left, and another upload is taken.
        while len(os.listdir(os.path.join(root, "uploads"))) > 1 and time.time() < deadline:
            time.sleep(0.02)
        assert len(os.listdir(os.path.join(root, "uploads"))) == 1
        assert upload(url, "other.txt", b"x", headers=later)[0] == 415  # a slot, not 503
    thread.join(120)
    status, result = waited[0]
    assert status == 200 and result["video"] == "twice.mp4"
    done = json.loads(get(url + f"/api/jobs/{first['job']}")[2])
    assert done["state"] == "done" and done["result"] == result
    assert [name for name in results_of(root) if name.startswith(("twice", "again"))] == ["twice"]
    assert os.listdir(os.path.join(root, "uploads")) == []
    assert get_status(url + "/api/jobs/nothing")[0] == 404


def test_a_classifier_page_gives_labels_and_a_timeline(classifier_server):
    url, _ = classifier_server
    _, _, body = get(url + "/api/status")
    assert json.loads(body)["videos"] == ["clip.mp4"]
    status, result = post(url + "/api/pick", json.dumps({"name": "clip.mp4"}).encode(),
                          "application/json")
    assert status == 200, result
    assert len(result["top"]) == 5 and result["windows"] == 5  # 2 s windows, 1 s apart, 6 s
    assert result["urls"]["timeline_plot"].endswith("/timeline.png")
    # Explained as train.predict --explain does, and served.
    assert result["explanation"]["kind"] == "heatmap"
    _, _, strip = get(url + result["urls"]["explanation_strip"])
    assert strip[:8] == b"\x89PNG\r\n\x1a\n"
    status, _, part = get(url + result["urls"]["explanation_video"], {"Range": "bytes=0-99"})
    assert status == 206 and len(part) == 100
    status, body = post(url + "/api/pick", json.dumps({"name": "../secret.mp4"}).encode(),
                        "application/json")
    assert status == 404 and "not one of the videos offered" in body["error"]


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run_main(app_cli.main, ["--run", str(tmp_path), "--port", "0"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: --run {tmp_path}: no config.json; is it a run folder?"]


def raw_get(url, path, host):
    """(status, headers, body) of a GET with a `Host` header of our choice
    (urllib always sends the URL's)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def results_of(root):
    return sorted(name for name in os.listdir(root) if name != "uploads")


def test_requests_from_other_sites_and_other_host_names_are_refused(summary_server, clip):
    url, app = summary_server
    root = app.state.root
    host = urllib.parse.urlsplit(url).netloc
    before = results_of(root)
    with open(clip, "rb") as file:
        data = file.read()
    # A page of another site posting a form (it cannot read or send the token) ...
    status, body = upload(url, "clip.mp4", data,
                          headers={"Origin": "http://evil.example", "X-Page-Token": None})
    assert status == 403 and "http://evil.example" in body["error"]
    # ... or a script that somehow has the token: the origin is still not the page's.
    status, body = upload(url, "clip.mp4", data, headers={"Origin": "http://evil.example"})
    assert status == 403
    status, body = upload(url, "clip.mp4", data,
                          headers={"Origin": None, "Referer": "http://evil.example/page.html"})
    assert status == 403
    # Without an origin (not a browser), the token is still needed.
    status, body = upload(url, "clip.mp4", data, headers={"Origin": None, "X-Page-Token": None})
    assert status == 403 and "token" in body["error"]
    status, body = post(url + "/api/pick", json.dumps({"name": "clip.mp4"}).encode(), "text/plain",
                        headers={"Origin": "http://evil.example", "X-Page-Token": None})
    assert status == 403
    # DNS rebinding: another name that resolves to 127.0.0.1.
    status, _, body = raw_get(url, "/", "evil.example")
    assert status == 400 and b"evil.example" in body
    status, _, _ = raw_get(url, "/api/status", f"evil.example:{urllib.parse.urlsplit(url).port}")
    assert status == 400
    status, body = upload(url, "clip.mp4", data, headers={"Host": "evil.example",
                                                          "Origin": "http://evil.example"})
    assert status == 400
    assert results_of(root) == before and os.listdir(os.path.join(root, "uploads")) == []
    # The page's own requests still work, by every loopback name it serves.
    assert raw_get(url, "/api/status", host)[0] == 200
    assert raw_get(url, "/", host.replace("127.0.0.1", "localhost"))[0] == 200


def test_only_the_files_of_its_own_results_are_served(summary_server, clip):
    url, app = summary_server
    root = app.state.root
    planted = [".ssh/id_rsa", "notes.txt", "uploads/someone.mp4", "other/result.json"]
    for name in planted:
        os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        with open(os.path.join(root, name), "w") as file:
            file.write("secret\n")
    try:
        with open(clip, "rb") as file:
            status, result = upload(url, "served.mp4", file.read())
        assert status == 200
        for name in planted + ["served/../notes.txt", "%2e%2e/x", "served"]:
            status, _, body = get_status(url + "/media/" + name)
            assert status == 404 and b"secret" not in body, name
    finally:
        for name in planted:
            os.remove(os.path.join(root, name))
    status, _, _ = raw_get(url, "/media/.ssh/id_rsa", "evil.example")
    assert status == 400
    status, _, data = get(url + result["urls"]["result"])
    assert status == 200 and json.loads(data)["frame_count"] == 150
    # The usual security headers, on the page and on every answer.
    for path in ("/", "/api/status", result["urls"]["result"], "/media/notes.txt"):
        _, headers, _ = get_status(url + path)
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"
        policy = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    _, headers, page = get(url + "/")
    nonce = re.search(r"script-src 'nonce-([^']+)'", headers["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page.decode() and f'<style nonce="{nonce}">' in page.decode()


def test_pick_takes_only_a_json_name(classifier_server):
    url, _ = classifier_server
    status, body = post(url + "/api/pick", b"clip.mp4", "application/json")
    assert status == 400 and "not JSON" in body["error"] and "None" not in body["error"]
    status, body = post(url + "/api/pick", json.dumps({"name": "clip.mp4"}).encode(), "text/plain")
    assert status == 415 and "application/json" in body["error"]
    status, body = post(url + "/api/pick", b"[1, 2]", "application/json")
    assert status == 400 and '{"name": VIDEO}' in body["error"]


def test_a_file_that_crashes_the_decoder_is_refused_and_the_page_goes_on(summary_server, clip,
                                                                          tmp_path, monkeypatch):
    from tests.crashing_decoder import use_crashing_decoder

    url, app = summary_server
    root = app.state.root
    # A real file that aborts OpenCV 4.13's decoder: refused, or (with a
    # decoder that copes) predicted; either way the page lives on.
    crashing = video_files.write_crashing_avi(str(tmp_path / "raw.avi"))
    with open(crashing, "rb") as file:
        status, body = upload(url, "raw.avi", file.read())
    assert status in (200, 415), body
    if status == 415:
        assert body["error"].startswith("raw.avi: could not be decoded: the decoder crashed")
    assert get(url + "/api/status")[0] == 200
    # The stand-in decoder aborts on any file starting with CRASH.
    decoder = use_crashing_decoder(monkeypatch)
    try:
        before = results_of(root)
        status, body = upload(url, "crash.mp4", b"CRASH" + b"\0" * 2000)
        assert status == 415 and body["error"] == (
            "crash.mp4: could not be decoded: the decoder crashed on this file (SIGABRT)")
        assert get(url + "/api/status")[0] == 200
        assert os.listdir(os.path.join(root, "uploads")) == [] and results_of(root) == before
        with open(clip, "rb") as file:
            status, result = upload(url, "after.mp4", file.read())
        assert status == 200 and result["frame_count"] == 150
    finally:
        decoder.close()
    # Still images are not videos, whatever their names say.
    image = video_files.write_still_image(str(tmp_path / "photo.png"))
    with open(image, "rb") as file:
        status, body = upload(url, "photo.mp4", file.read())
    assert status == 415 and body["error"] == "photo.mp4: a still image (PNG), not a video"
    assert os.listdir(os.path.join(root, "uploads")) == []


def test_results_are_bounded_and_uploads_removed(summary_server, folder, tmp_path):
    url, app = summary_server
    root, store = app.state.root, app.state.store
    small = str(tmp_path / "small.mp4")
    write_scene_video(small, seconds=2.0, fps=10.0, scenes=2, size=(48, 64))
    with open(small, "rb") as file:
        data = file.read()
    bound, store.max_bytes = store.max_bytes, 1  # one byte: only the newest result stays
    try:
        names = []
        for name in ("bound_a", "bound_b", "bound_c"):
            status, result = upload(url, f"{name}.mp4", data)
            assert status == 200
            names.append(result["urls"]["summary_video"])
        # The older ones are gone from disk and from what the page serves.
        assert [name for name in results_of(root) if name.startswith("bound_")] == ["bound_c"]
        assert os.listdir(os.path.join(root, "uploads")) == []
        assert get_status(url + names[0])[0] == 404 and get(url + names[-1])[0] == 200
        # A folder the page did not write is never removed.
        os.makedirs(os.path.join(root, "mine"))
        assert upload(url, "bound_d.mp4", data)[0] == 200
        assert {"bound_d", "mine"} <= set(results_of(root))
        assert not {"bound_c"} & set(results_of(root))
    finally:
        store.max_bytes = bound

    # The run folder removed under the running page: a JSON answer that
    # says so, and nothing written.
    run = str(folder / "keyframe_run")
    before = results_of(root)
    os.rename(run, run + ".moved")
    try:
        status, body = upload(url, "gone.mp4", data)
        assert status == 503 and f"the run folder {folder.name}/keyframe_run (or" in body["error"]
        assert str(folder) not in body["error"]
    finally:
        os.rename(run + ".moved", run)
    assert results_of(root) == before


@pytest.mark.parametrize("flags, message", [
    (["--max-upload-mb", "nan"], "--max-upload-mb must be a number of MB > 0, got nan"),
    (["--max-upload-mb", "inf"], "--max-upload-mb must be a number of MB > 0, got inf"),
    (["--max-results-mb", "0"], "--max-results-mb must be a number of MB > 0, got 0.0"),
])
def test_bad_page_flags_end_in_one_line(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # refused before the folder is looked at
        run_main(app_cli.main, ["--run", str(tmp_path), "--port", "0", *flags])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]


def test_the_page_answers_for_the_names_it_listens_on():
    assert app_cli.allowed_hosts("127.0.0.1") == ["127.0.0.1", "::1", "localhost"]
    assert "box.lan" in app_cli.allowed_hosts("127.0.0.1", ["box.lan"])
    assert "10.0.0.5" in app_cli.allowed_hosts("10.0.0.5")


# ---------------------------------------------------------------------------
# A real browser.


def browser_or_skip():
    try:
        return start_browser()
    except BrowserMissing as missing:
        pytest.skip(str(missing))


@pytest.mark.slow
def test_a_browser_uploads_a_video_and_plays_the_summary(summary_server, classifier_server, clip):
    from selenium.webdriver.common.by import By

    driver, profile = browser_or_skip()
    try:
        url, _ = summary_server
        driver.get(url + "/")
        wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        driver.find_element(By.ID, "video").send_keys(clip)
        driver.find_element(By.ID, "go").click()
        wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done")
                 or d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == ""
        # What the run was trained on and the result's notes, as the JSON has them.
        shown = json.loads(driver.find_element(By.ID, "json").get_attribute("textContent"))
        trained = driver.find_element(By.ID, "trained-on").text
        assert trained.startswith(f"trained on {shown['trained_on']['data']}")
        assert all(name in trained for name in shown["trained_on"]["classes"])
        notes = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#notes li")]
        assert notes == shown["notes"] and notes
        keyframes = driver.find_elements(By.CSS_SELECTOR, "img.keyframe")
        assert keyframes
        wait_for(driver, lambda d: d.execute_script(
            "return [...document.querySelectorAll('img.keyframe, #score-plot')]"
            ".every(i => i.complete && i.naturalWidth > 0)"), timeout=30)
        state = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const video = document.getElementById('summary');
            video.play().then(() => setTimeout(() => done({ready: video.readyState,
                    time: video.currentTime, width: video.videoWidth, error: null}), 400))
                .catch((e) => done({ready: video.readyState, error: String(e)}));""")
        assert state["error"] is None and state["ready"] >= 2, state
        assert state["width"] == 256 and state["time"] > 0
        screenshot = os.environ.get("VIDEO_SUITE_SCREENSHOT")
        if screenshot:
            driver.execute_script("document.getElementById('summary').pause();"
                                  "document.getElementById('summary').currentTime = 0.2;")
            time.sleep(0.5)
            driver.save_screenshot(screenshot)

        # A file that is not a video: the page says so.
        text = video_files.write_text_file(os.path.join(profile, "notes.txt"))
        driver.find_element(By.ID, "video").send_keys(text)
        driver.find_element(By.ID, "go").click()
        wait_for(driver, lambda d: d.find_element(By.ID, "error").text)
        assert "notes.txt: not a video file" in driver.find_element(By.ID, "error").text
        assert driver.find_element(By.ID, "go").is_enabled()

        # A classifier run: top-5 labels and the timeline.
        url, _ = classifier_server
        driver.get(url + "/")
        wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        driver.find_element(By.ID, "pick-go").click()
        wait_for(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done"))
        assert len(driver.find_elements(By.CSS_SELECTOR, "#top tr.label")) == 5
        assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline tr.window")) == 5
        wait_for(driver, lambda d: d.execute_script(
            "const i = document.getElementById('timeline-plot'); return i.complete && i.naturalWidth > 0"),
            timeout=30)
        # Its explanation: the strip shown and the overlay video playable.
        assert driver.find_element(By.ID, "explanation-section").is_displayed()
        wait_for(driver, lambda d: d.execute_script(
            "const i = document.getElementById('explanation-strip'); return i.complete && i.naturalWidth > 0"),
            timeout=30)
        state = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const video = document.getElementById('explanation-video');
            video.play().then(() => setTimeout(() => done({ready: video.readyState,
                    width: video.videoWidth, error: null}), 400))
                .catch((e) => done({ready: video.readyState, error: String(e)}));""")
        assert state["error"] is None and state["ready"] >= 2 and state["width"] > 0, state
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def body_data(driver, name):
    return driver.execute_script(f"return document.body.dataset.{name} || ''")


@pytest.mark.slow
def test_the_page_shows_progress_and_runs_a_video_once(summary_server, folder, clip, tmp_path):
    from selenium.webdriver.common.by import By

    url, app = summary_server
    root = app.state.root
    video = str(tmp_path / "progress.mp4")
    shutil.copy(clip, video)
    decoding, writing = "decoding and scoring frames", "writing the summary video"
    driver, profile = browser_or_skip()
    gate = StageGate(app.state.jobs, "progress.mp4", [decoding, writing])
    try:
        driver.get(url + "/")
        wait_for(driver, lambda d: body_data(d, "ready"))
        button = driver.find_element(By.ID, "go")
        assert button.is_enabled() and not driver.find_element(By.ID, "progress").is_displayed()
        driver.find_element(By.ID, "video").send_keys(video)
        button.click()

        # Held while decoding: the page shows the stage, its count and the time.
        gate.wait(decoding)
        wait_for(driver, lambda d: body_data(d, "stage") == decoding, timeout=30)
        assert driver.find_element(By.ID, "progress").is_displayed()
        assert driver.find_element(By.ID, "progress-video").text == "progress.mp4"
        assert driver.find_element(By.ID, "progress-count").text == "1 of 150 · 0%"
        assert re.fullmatch(r"elapsed \d+\.\d s",
                            driver.find_element(By.ID, "progress-elapsed").text)
        assert not button.is_enabled() and not driver.find_element(By.ID, "pick-go").is_enabled()
        # A second click, and a second submit however it is sent, run nothing more.
        driver.execute_script("document.getElementById('go').click();"
                              "document.getElementById('upload-form').requestSubmit();")
        with open(video, "rb") as file:
            status, joined = upload(url, "progress.mp4", file.read(),
                                    headers={"Prefer": "respond-async"})
        assert status == 202 and joined["joined"]

        # Let go to the summary video: the page follows.
        gate.release(decoding)
        gate.wait(writing)
        wait_for(driver, lambda d: body_data(d, "stage") == writing, timeout=30)
        assert re.fullmatch(r"1 of \d+ · \d+%", driver.find_element(By.ID, "progress-count").text)
        stages = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#progress-stages li")]
        assert stages[0] == "uploading" or stages[0].startswith("checking the video")
        assert any(re.fullmatch(rf"{decoding}: \d+\.\d s", text) for text in stages), stages
        assert stages[-1] == writing
        assert not button.is_enabled()
        gate.release(writing)

        wait_for(driver, lambda d: body_data(d, "done") or d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == ""
        assert button.is_enabled() and driver.find_element(By.ID, "pick-go").is_enabled()
        assert not driver.find_element(By.ID, "progress").is_displayed()
        assert body_data(driver, "done") == "1"  # one result shown ...
        assert [name for name in results_of(root) if name.startswith("progress")] == ["progress"]

        # Every number has its label; the headings name the video.
        captions = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "figcaption")]
        assert captions and all(re.fullmatch(r"time \d+\.\d\d s · score \d\.\d\d", text)
                                for text in captions), captions
        assert re.fullmatch(r"summary [\d.]+ s of [\d.]+ s · shots \d+",
                            driver.find_element(By.ID, "summary-caption").text)
        heading = driver.find_element(By.CSS_SELECTOR, "#curve-section h2").text
        assert heading == "Score curve · progress.mp4"
        # The JSON the page shows holds no path of the server.
        shown = driver.execute_script("return document.getElementById('json').textContent")
        assert '"video": "progress.mp4"' in shown
        for path in (str(folder), str(tmp_path), root, tempfile.gettempdir() + "/"):
            assert path not in shown
        assert not re.search(r'"/(?!media/)', shown), shown
    finally:
        gate.close()
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

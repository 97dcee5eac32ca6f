"""The web page of a trained run, served by `python -m train.app`.

One HTML page, served by Starlette and uvicorn on 127.0.0.1 (`--host` to
listen elsewhere), with everything inline (no CDN, works offline). Upload a
video, or pick one of `--videos FOLDER`; the run's task predicts it through
the same `Task.predictor` as `python -m train.predict`, into a new result
folder under `--out` (default RUN/predictions), and the page shows what the
result holds: for a keyframe run the score curve, the keyframes and the
summary video playing in the page; for a classifier the top-5 labels and
the timeline. With `--explain`, every prediction also gets its explanation
(`train.serving.explain`), and the page plays its overlay video and shows its
PNG strip under the result.

Starting. Importing TensorFlow and loading the model take seconds, so the
page is served first and the model loads in a background thread; the page
says when it is ready, and a prediction asked for earlier waits for it.
A folder that is not a run is refused before anything starts.

Uploads. A file over `--max-upload-mb` is refused (413) as soon as the
request says or shows it is larger; a file without a video extension, or
one that does not decode, is refused (415) with a message naming it. Every
upload and every picked video is decoded once in a separate process first
(`data.decoder_process`): a file that crashes or hangs the decoder is
refused as one that could not be decoded, and the page goes on serving.
Still images and files of one frame are refused as videos. An upload is
removed as soon as its prediction is done or refused.

Who may use it. The page answers only requests whose `Host` is one of the
names it serves (`allowed_hosts`: by default the loopback names 127.0.0.1,
localhost and ::1), so a DNS name an attacker points at 127.0.0.1 gets
nothing (400). A request that changes something (a POST) must come from
the page itself: its `Origin` (or, without one, its `Referer`) must be the
page's own origin, and it must carry the page's token in the
`X-Page-Token` header (the page holds it; `/api/status` gives it to the
page's own scripts), which a form or script of another site can neither
read nor send; anything else is refused (403). Every response carries
`X-Frame-Options: DENY`, a `Content-Security-Policy` that allows only the
page's own inline script and style (by a nonce of each response) and its
own media, `X-Content-Type-Options: nosniff` and `Referrer-Policy:
same-origin`.

Files. `/media/...` serves only the files of the results this page wrote
(a registry of them, filled as each result is made), never anything else
under `--out`, and never the uploads. The page keeps its own result
folders up to `max_results_bytes` in all (`--max-results-mb`), removing the
oldest first (the newest result is always kept); folders it did not write
are never touched. Media files are served with HTTP range requests, which
browsers need to play and seek a video.

Example (a server in a thread, as the tests run it):

    with serve_in_thread(create_app("runs/keyframe_transformer/<stamp>")) as url:
        ...  # open url in a browser
"""

import contextlib
import html
import json
import os
import secrets
import shutil
import sys
import threading
import time
import urllib.parse

from data.video import VideoError
from train import run_folder
from train.serving.prediction import PredictOptions, list_videos, safe_name

DEFAULT_MAX_UPLOAD_MB = 200
DEFAULT_MAX_RESULTS_MB = 1000
UPLOAD_FIELD = "video"
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_HEADER = "x-page-token"
# Uploads received at once; more are refused (503), so that visitors
# cannot fill the disk with many uploads in flight.
MAX_UPLOADS_IN_FLIGHT = 2


class UploadTooLarge(Exception):
    pass


class ModelNotLoaded(Exception):
    pass


class ModelHolder:
    """Loads a run's model and predictor in a background thread."""

    def __init__(self, run, options=None):
        self.run = run
        self.options = options or {}
        self.predictor = None
        self.record = None
        self.error = None
        self.ready = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._load, name="model-loader", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _load(self):
        try:
            # TensorFlow loads here, in the background, while the page is served.
            from train import tasks

            options = PredictOptions.from_dict({**self.options, "run": self.run})
            record, model = run_folder.load_run(self.run)
            self.predictor = tasks.task_for(record["model"]).predictor(model, record, options)
            self.record = record
        except Exception as error:  # shown on the page and refused with each request
            self.error = f"{type(error).__name__}: {error}" if not str(error) else str(error)
            print(f"error: {self.error}", file=sys.stderr)
        finally:
            self.ready.set()

    def state(self):
        if not self.ready.is_set():
            return "loading"
        return "error" if self.error else "ready"

    def predict(self, video, root):
        """Waits for the model, then predicts `video` into a new folder of `root`."""
        from train.serving.prediction import predict_one  # TensorFlow: see _load

        self.ready.wait()
        if self.error:
            raise ModelNotLoaded(self.error)
        with self.lock:  # one prediction at a time: one model, two cores
            return predict_one(self.predictor, video, root)


class ResultStore:
    """The result folders this page wrote, the files it serves from them,
    and the bound on the disk they take.

    Args:
        root: the folder of the result folders (`--out`).
        max_bytes: the most the result folders may take together; the
            oldest are removed first, and the newest is always kept.
    """

    def __init__(self, root, max_bytes):
        self.root = os.path.abspath(root)
        self.max_bytes = max_bytes
        self.folders = []  # (folder, bytes), oldest first
        self.files = {}  # URL path under /media/ -> absolute file path
        self.lock = threading.Lock()

    def add(self, result):
        """Registers a new result's files; returns the result with a URL
        beside each of them (`urls` for `files`, `url` in every keyframe).
        Older results are removed while the folders take too much."""
        folder = result_folder_of(result, self.root)
        with self.lock:
            def url(path):
                real = os.path.realpath(path)
                if folder is None or os.path.commonpath([real, folder]) != folder:
                    return None  # only files inside the result's own folder
                relative = os.path.relpath(real, self.root).replace(os.sep, "/")
                self.files[relative] = real
                return "/media/" + urllib.parse.quote(relative)

            result = dict(result)
            result["urls"] = {name: url(path)
                              for name, path in (result.get("files") or {}).items()}
            if result.get("keyframes"):
                result["keyframes"] = [
                    {**keyframe, "url": url(keyframe["image"])} if "image" in keyframe else keyframe
                    for keyframe in result["keyframes"]
                ]
            if folder is not None:
                self.folders.append((folder, _folder_bytes(folder)))
                self._trim()
        return result

    def _trim(self):
        while len(self.folders) > 1 and sum(size for _, size in self.folders) > self.max_bytes:
            folder, _ = self.folders.pop(0)
            shutil.rmtree(folder, ignore_errors=True)
            prefix = os.path.relpath(folder, self.root).replace(os.sep, "/") + "/"
            for name in [name for name in self.files if name.startswith(prefix)]:
                del self.files[name]

    def path(self, name):
        """The file served as `/media/<name>`, or None."""
        with self.lock:
            path = self.files.get(name)
        return path if path is not None and os.path.isfile(path) else None


def result_folder_of(result, root):
    """The folder under `root` that holds a result's files (its own result
    folder), or None."""
    paths = [os.path.realpath(path) for path in (result.get("files") or {}).values()]
    if not paths:
        return None
    folder = os.path.commonpath([os.path.dirname(path) for path in paths])
    root = os.path.realpath(root)
    if folder == root or os.path.commonpath([folder, root]) != root:
        return None
    # The first folder below root: a result's files may sit in subfolders.
    return os.path.join(root, os.path.relpath(folder, root).split(os.sep)[0])


def _folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(directory, name))
               for directory, _, names in os.walk(folder) for name in names
               if os.path.isfile(os.path.join(directory, name)))


async def _counted(stream, limit, name):
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise UploadTooLarge(name)
        yield chunk


def host_name(host):
    """The name part of a `Host` header value (without port or brackets).

    Example:

    >>> host_name("127.0.0.1:8000"), host_name("[::1]:80"), host_name("Example.org")
    ('127.0.0.1', '::1', 'example.org')
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class PageGuard:
    """ASGI middleware: only served Host names; POSTs only from the page
    itself (its origin and its token); security headers on every answer."""

    def __init__(self, app, allowed_hosts, token):
        self.app = app
        self.allowed = {host_name(host) for host in allowed_hosts}
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        nonce = secrets.token_urlsafe(12)
        scope.setdefault("state", {})["nonce"] = nonce

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(name.encode(), value.encode())
                            for name, value in security_headers(nonce).items()]
                message = {**message, "headers": headers}
            await send(message)

        problem = self.refusal(scope)
        if problem is not None:
            status, message = problem
            body = json.dumps({"error": message}).encode()
            await send_with_headers({
                "type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())],
            })
            await send_with_headers({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope):
        """(status, message) of a request the page does not answer, or None."""
        headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                   for name, value in scope.get("headers", [])}
        host = headers.get("host", "")
        if host_name(host) not in self.allowed:
            return 400, (f"Host {host!r} is not served here (this page answers for "
                         f"{', '.join(sorted(self.allowed))}; train.app --allow-host adds names)")
        if scope["method"] in ("GET", "HEAD"):
            return None
        own = f"http://{host.strip().lower()}"
        origin = headers.get("origin")
        if origin is None and headers.get("referer"):
            parts = urllib.parse.urlsplit(headers["referer"])
            origin = f"{parts.scheme}://{parts.netloc}"
        if origin is not None and origin.lower() != own:
            return 403, (f"a request from {origin} is refused: this page accepts uploads and "
                         f"picks from its own page ({own}) only")
        if not secrets.compare_digest(headers.get(TOKEN_HEADER, ""), self.token):
            return 403, (f"a request without the page's token is refused: send the "
                         f"{TOKEN_HEADER} header the page sends (its value is in /api/status)")
        return None


def security_headers(nonce):
    """The headers of every response; `nonce` lets the page's own inline
    script and style run."""
    return {
        "x-frame-options": "DENY",
        "content-security-policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "img-src 'self'; media-src 'self'; connect-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin",
    }


def create_app(run, out=None, videos=None, max_upload_bytes=DEFAULT_MAX_UPLOAD_MB * 2**20,
               options=None, allowed_hosts=LOOPBACK_HOSTS,
               max_results_bytes=DEFAULT_MAX_RESULTS_MB * 2**20):
    """The Starlette app of one run; the model starts loading at once.

    Args:
        run: the run folder.
        out: the folder of result folders (default RUN/predictions).
        videos: a folder of videos the page offers to pick from.
        max_upload_bytes: the largest upload accepted.
        options: prediction options (`PredictOptions` fields) as a dict.
        allowed_hosts: the host names (the `Host` header without its port)
            the page answers for.
        max_results_bytes: the most the page's own result folders may take
            on disk; the oldest are removed first.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.formparsers import MultiPartParser
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.routing import Route

    from data.decoder_process import check_video

    record = run_folder.check_servable(run)
    root = os.path.abspath(out or os.path.join(run, "predictions"))
    uploads = os.path.join(root, "uploads")
    os.makedirs(uploads, exist_ok=True)
    holder = ModelHolder(run, options).start()
    store = ResultStore(root, max_results_bytes)
    token = secrets.token_urlsafe(24)
    limit_mb = max_upload_bytes / 2**20
    in_flight = threading.BoundedSemaphore(MAX_UPLOADS_IN_FLIGHT)

    def pickable():
        if not videos:
            return []
        return [os.path.relpath(path, videos) for path in list_videos(videos, exclude=root)]

    def error(message, status):
        return JSONResponse({"error": message}, status_code=status)

    def run_gone():
        if not os.path.isdir(run) or not os.path.isfile(os.path.join(run, run_folder.BEST)):
            return error(f"the run folder {run} (or its {run_folder.BEST}) is gone; start "
                         "train.app again with a run that exists", 503)
        return None

    async def predict(video, name):
        try:
            await run_in_threadpool(check_video, video)
            result = await run_in_threadpool(holder.predict, video, root)
        except (VideoError, ValueError, ModelNotLoaded) as problem:
            if isinstance(problem, VideoError):
                return error(f"{name}: {problem.problem}", 415)
            if isinstance(problem, ModelNotLoaded):
                return error(f"the run could not be loaded: {problem}", 503)
            return error(f"{name}: {problem}", 422)
        return JSONResponse(store.add(result))

    async def page(request: Request):
        return HTMLResponse(render_page(record["model"], run, limit_mb, bool(videos),
                                        request.scope["state"]["nonce"], token))

    async def status(request: Request):
        return JSONResponse({
            "state": holder.state(), "model": record["model"], "error": holder.error,
            "videos": pickable(), "max_upload_mb": limit_mb, "token": token,
        })

    async def upload(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_upload_bytes:
            return error(f"the upload is {int(declared) / 2**20:.1f} MB; the limit is "
                         f"{limit_mb:g} MB", 413)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(f"expected a multipart/form-data upload with a '{UPLOAD_FIELD}' file", 400)
        gone = run_gone()
        if gone is not None:
            return gone
        if not in_flight.acquire(blocking=False):
            return error(f"{MAX_UPLOADS_IN_FLIGHT} uploads are already being received; "
                         "try again when they are done", 503)
        saved = None
        try:
            parser = MultiPartParser(
                request.headers, _counted(request.stream(), max_upload_bytes, "upload"),
                max_files=1, max_fields=1,
            )
            try:
                form = await parser.parse()
            except UploadTooLarge:
                return error(f"the upload is over the limit of {limit_mb:g} MB", 413)
            except Exception as problem:  # malformed multipart data
                return error(f"not a readable upload ({problem})", 400)
            try:
                part = form.get(UPLOAD_FIELD)
                if part is None or not hasattr(part, "filename"):
                    return error(f"the upload has no '{UPLOAD_FIELD}' file", 400)
                name = os.path.basename(part.filename or "upload")
                if not name.lower().endswith(VIDEO_EXTENSIONS):
                    return error(
                        f"{name}: not a video file (expected {', '.join(VIDEO_EXTENSIONS)})", 415
                    )
                try:
                    saved = save_upload(part.file, uploads, name)
                except OSError as problem:
                    return error(f"{name}: cannot be stored under {uploads} "
                                 f"({problem.strerror or problem})", 507)
            finally:
                await form.close()
            return await predict(saved, name)
        finally:
            in_flight.release()
            if saved is not None:  # an upload is not kept once predicted or refused
                with contextlib.suppress(FileNotFoundError):
                    os.remove(saved)

    async def pick(request: Request):
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error('expected a JSON body {"name": VIDEO} with Content-Type: '
                         "application/json", 415)
        try:
            body = await request.json()
        except ValueError:
            return error('the body is not JSON; expected {"name": VIDEO}, VIDEO one of the '
                         "videos /api/status lists", 400)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            return error('expected a JSON object {"name": VIDEO}, VIDEO one of the videos '
                         "/api/status lists", 400)
        name = body["name"]
        if name not in pickable():
            return error(f"{name!r} is not one of the videos offered", 404)
        gone = run_gone()
        if gone is not None:
            return gone
        return await predict(os.path.join(videos, name), name)

    async def media(request: Request):
        path = store.path(request.path_params["name"])
        if path is None:
            return error("not a file of a result of this page", 404)
        return FileResponse(path)

    async def server_error(request: Request, problem: Exception):
        return error(f"the server failed: {type(problem).__name__}: {problem}", 500)

    routes = [
        Route("/", page),
        Route("/api/status", status),
        Route("/api/predict", upload, methods=["POST"]),
        Route("/api/pick", pick, methods=["POST"]),
        Route("/media/{name:path}", media),
    ]
    app = Starlette(
        routes=routes, exception_handlers={Exception: server_error},
        middleware=[Middleware(PageGuard, allowed_hosts=allowed_hosts, token=token)],
    )
    app.state.holder = holder
    app.state.root = root
    app.state.store = store
    app.state.token = token
    return app


def save_upload(file, folder, name):
    """Copies an uploaded file into a new file of `folder`, named after it."""
    os.makedirs(folder, exist_ok=True)
    stem, extension = os.path.splitext(name)
    stem = safe_name(stem) or "upload"
    for number in range(1, 100_000):
        path = os.path.join(folder, f"{stem}{extension}" if number == 1 else f"{stem}-{number}{extension}")
        try:
            with open(path, "xb") as target:
                shutil.copyfileobj(file, target)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: no free name for {name}")


@contextlib.contextmanager
def serve_in_thread(app, host="127.0.0.1", port=0):
    """Serves `app` with uvicorn in a daemon thread; yields its base URL.

    With `port=0` the system picks a free port.
    """
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if not thread.is_alive() or time.time() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_label(run):
    """The run's last two folder names (e.g. `keyframe_transformer/<stamp>`)."""
    parts = os.path.abspath(run).split(os.sep)
    return "/".join(parts[-2:])


def render_page(model_name, run, limit_mb, with_videos, nonce, token):
    return (
        PAGE.replace("{{model}}", html.escape(model_name))
        .replace("{{nonce}}", nonce)
        .replace("{{token}}", html.escape(token))
        .replace("{{run}}", html.escape(run_label(run)))
        .replace("{{limit}}", f"{limit_mb:g}")
        .replace("{{pick_hidden}}", "" if with_videos else "hidden")
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="page-token" content="{{token}}">
<title>{{model}}: video results</title>
<style nonce="{{nonce}}">
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 980px; color: #222; padding: 0 1em; }
h1 { font-size: 1.35em; margin-bottom: .2em; }
.run { color: #666; font-size: .85em; margin-top: 0; }
form { margin: .6em 0; }
#status { font-weight: 600; }
#status.loading { color: #a60; } #status.ready { color: #2a7; } #status.error, #error { color: #b00; }
section { margin-top: 1.2em; }
.keyframes { display: flex; flex-wrap: wrap; gap: 8px; }
.keyframes figure { margin: 0; font-size: .8em; color: #555; }
.keyframes img { height: 110px; border-radius: 3px; display: block; }
img.plot { max-width: 100%; }
.scroll { overflow-x: auto; } .scroll img { max-width: none; }
video { width: 480px; max-width: 100%; background: #000; }
table { border-collapse: collapse; font-size: .9em; }
td, th { padding: 2px 10px; text-align: left; border-bottom: 1px solid #ddd; }
td.bar { width: 240px; } .bar div { background: #4a90d9; height: 10px; }
pre { background: #f6f6f6; padding: .6em; overflow: auto; max-height: 20em; font-size: .8em; }
</style></head>
<body>
<h1>{{model}}</h1>
<p class="run">run {{run}}</p>
<p>Model: <span id="status" class="loading">loading…</span></p>
<form id="upload-form">
  <input type="file" id="video" name="video" accept="video/*,.mp4,.avi,.mov,.mkv,.webm">
  <button type="submit" id="go" disabled>Upload and run</button>
  <small>up to {{limit}} MB</small>
</form>
<form id="pick-form" {{pick_hidden}}>
  <select id="pick"></select> <button type="submit" id="pick-go" disabled>Run</button>
</form>
<p id="working"></p>
<p id="error"></p>
<div id="result" hidden>
  <section id="summary_video-section" hidden><h2>Summary</h2>
    <video id="summary" controls muted playsinline preload="auto"></video>
    <p id="summary-caption"></p></section>
  <section id="keyframes-section" hidden><h2>Keyframes</h2><div class="keyframes" id="keyframes"></div></section>
  <section id="curve-section" hidden><h2>Score curve</h2><img class="plot" id="score-plot" alt="score over time"></section>
  <section id="labels-section" hidden><h2>Top labels</h2><table id="top"></table></section>
  <section id="timeline-section" hidden><h2>Timeline</h2>
    <img class="plot" id="timeline-plot" alt="class probability over time"><table id="timeline"></table></section>
  <section id="explanation-section" hidden><h2>What the model looked at</h2>
    <p id="explanation-method"></p>
    <video id="explanation-video" controls muted loop playsinline preload="auto"></video>
    <div class="scroll"><img id="explanation-strip" alt="explanation strip"></div></section>
  <details><summary>JSON</summary><pre id="json"></pre></details>
</div>
<script nonce="{{nonce}}">
"use strict";
const TOKEN = document.querySelector('meta[name="page-token"]').content;
const $ = (id) => document.getElementById(id);
let ready = false;
function show(id, on) { $(id).hidden = !on; }
function cell(row, text) { const td = document.createElement('td'); td.textContent = text; row.appendChild(td); return td; }
async function poll() {
  try {
    const status = await (await fetch('/api/status')).json();
    $('status').textContent = status.state === 'loading' ? 'loading…' : status.state;
    $('status').className = status.state;
    if (status.error) { $('error').textContent = status.error; }
    if (status.state === 'ready' && !ready) {
      ready = true; $('go').disabled = false; $('pick-go').disabled = false;
      document.body.dataset.ready = '1';
    }
    const pick = $('pick');
    if (!pick.options.length) {
      for (const name of status.videos) { const o = document.createElement('option'); o.value = o.textContent = name; pick.appendChild(o); }
    }
    if (status.state === 'loading') setTimeout(poll, 500);
  } catch (e) { setTimeout(poll, 1000); }
}
const RENDERERS = {
  summary_video(data, urls) {
    const v = $('summary'); v.src = urls.summary_video; v.load();
    $('summary-caption').textContent = `${data.summary_seconds} s of ${data.duration} s, ${(data.shots || []).length} shots`;
  },
  keyframes(data) {
    const frames = $('keyframes'); frames.innerHTML = '';
    for (const k of data.keyframes || []) {
      const fig = document.createElement('figure'); const img = document.createElement('img');
      img.src = k.url; img.className = 'keyframe'; img.alt = `frame ${k.frame}`;
      const cap = document.createElement('figcaption'); cap.textContent = `${k.time.toFixed(2)} s · ${k.score.toFixed(2)}`;
      fig.appendChild(img); fig.appendChild(cap); frames.appendChild(fig);
    }
  },
  curve(data, urls) { $('score-plot').src = urls.score_plot; },
  labels(data) {
    const top = $('top'); top.innerHTML = '';
    for (const t of data.top || []) {
      const row = document.createElement('tr'); row.className = 'label';
      cell(row, t.label); cell(row, t.probability.toFixed(3));
      const bar = cell(row, ''); bar.className = 'bar'; const fill = document.createElement('div');
      fill.style.width = (100 * t.probability).toFixed(1) + '%'; bar.appendChild(fill);
      top.appendChild(row);
    }
  },
  timeline(data, urls) {
    const timeline = $('timeline'); timeline.innerHTML = '';
    for (const w of data.timeline || []) {
      const row = document.createElement('tr');
      cell(row, `${w.start.toFixed(1)}–${w.end.toFixed(1)} s`); cell(row, w.label); cell(row, w.probability.toFixed(3));
      timeline.appendChild(row);
    }
    $('timeline-plot').src = urls.timeline_plot;
  },
  explanation(data, urls) {
    $('explanation-method').textContent = (data.explanation || {}).method || '';
    $('explanation-strip').src = urls.explanation_strip;
    const v = $('explanation-video'); v.src = urls.explanation_video; v.load();
  },
};
function render(data) {
  show('result', true);
  $('json').textContent = JSON.stringify(data, null, 1);
  const urls = data.urls || {};
  for (const name of Object.keys(RENDERERS)) show(`${name}-section`, false);
  for (const name of data.sections || []) {
    if (!RENDERERS[name]) continue;  // a section this page does not know
    RENDERERS[name](data, urls);
    show(`${name}-section`, true);
  }
  document.body.dataset.done = String(Number(document.body.dataset.done || 0) + 1);
}
async function run(request, what) {
  $('error').textContent = ''; show('result', false);
  $('working').textContent = `Running on ${what}…`;
  try {
    const response = await request;
    let data;
    try { data = await response.json(); } catch (e) { data = {error: `${response.status} ${response.statusText}: the server sent no result`}; }
    $('working').textContent = '';
    if (!response.ok || data.error) { $('error').textContent = data.error || response.statusText; document.body.dataset.failed = '1'; return; }
    render(data);
  } catch (e) { $('working').textContent = ''; $('error').textContent = String(e); }
}
$('upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const file = $('video').files[0];
  if (!file) { $('error').textContent = 'Choose a video file first.'; return; }
  if (file.size > {{limit}} * 1048576) { $('error').textContent = `${file.name}: ${(file.size / 1048576).toFixed(1)} MB is over the limit of {{limit}} MB`; return; }
  const body = new FormData(); body.append('video', file);
  run(fetch('/api/predict', {method: 'POST', headers: {'X-Page-Token': TOKEN}, body}), file.name);
});
$('pick-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('pick').value;
  run(fetch('/api/pick', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-Page-Token': TOKEN}, body: JSON.stringify({name})}), name);
});
poll();
</script>
</body></html>
"""

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
one that does not decode, is refused (415) with a message naming it. Media
files are served with HTTP range requests, which browsers need to play and
seek a video.

Example (a server in a thread, as the tests run it):

    with serve_in_thread(create_app("runs/keyframe_transformer/<stamp>")) as url:
        ...  # open url in a browser
"""

import contextlib
import html
import os
import shutil
import sys
import threading
import time

from data.video import VideoError
from train import run_folder
from train.serving.prediction import PredictOptions, list_videos, safe_name

DEFAULT_MAX_UPLOAD_MB = 200
UPLOAD_FIELD = "video"
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


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


def media_urls(result, root):
    """`result` with a URL beside every file of it under `root`: `urls` for
    `files`, `url` in every keyframe."""

    def url(path):
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
        return "/media/" + "/".join(relative.split(os.sep))

    result = dict(result)
    result["urls"] = {name: url(path) for name, path in (result.get("files") or {}).items()}
    if result.get("keyframes"):
        result["keyframes"] = [
            {**keyframe, "url": url(keyframe["image"])} if "image" in keyframe else keyframe
            for keyframe in result["keyframes"]
        ]
    return result


async def _counted(stream, limit, name):
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise UploadTooLarge(name)
        yield chunk


def create_app(run, out=None, videos=None, max_upload_bytes=DEFAULT_MAX_UPLOAD_MB * 2**20,
               options=None):
    """The Starlette app of one run; the model starts loading at once.

    Args:
        run: the run folder.
        out: the folder of result folders (default RUN/predictions).
        videos: a folder of videos the page offers to pick from.
        max_upload_bytes: the largest upload accepted.
        options: prediction options (`PredictOptions` fields) as a dict.
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.formparsers import MultiPartParser
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    record = run_folder.check_servable(run)
    root = os.path.abspath(out or os.path.join(run, "predictions"))
    uploads = os.path.join(root, "uploads")
    os.makedirs(uploads, exist_ok=True)
    holder = ModelHolder(run, options).start()
    limit_mb = max_upload_bytes / 2**20

    def pickable():
        if not videos:
            return []
        return [os.path.relpath(path, videos) for path in list_videos(videos)]

    def error(message, status):
        return JSONResponse({"error": message}, status_code=status)

    async def predict(video, name, uploaded=False):
        try:
            result = await run_in_threadpool(holder.predict, video, root)
        except (VideoError, ValueError, ModelNotLoaded) as problem:
            if uploaded:  # a refused upload is not kept
                os.remove(video)
            if isinstance(problem, VideoError):
                return error(f"{name}: {problem.problem}", 415)
            if isinstance(problem, ModelNotLoaded):
                return error(f"the run could not be loaded: {problem}", 503)
            return error(f"{name}: {problem}", 422)
        return JSONResponse(media_urls(result, root))

    async def page(request: Request):
        return HTMLResponse(render_page(record["model"], run, limit_mb, bool(videos)))

    async def status(request: Request):
        return JSONResponse({
            "state": holder.state(), "model": record["model"], "error": holder.error,
            "videos": pickable(), "max_upload_mb": limit_mb,
        })

    async def upload(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_upload_bytes:
            return error(f"the upload is {int(declared) / 2**20:.1f} MB; the limit is "
                         f"{limit_mb:g} MB", 413)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(f"expected a multipart/form-data upload with a '{UPLOAD_FIELD}' file", 400)
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
            saved = save_upload(part.file, uploads, name)
        finally:
            await form.close()
        return await predict(saved, name, uploaded=True)

    async def pick(request: Request):
        try:
            name = (await request.json()).get("name")
        except (ValueError, AttributeError):
            name = None
        if name not in pickable():
            return error(f"{name!r} is not one of the videos offered", 404)
        return await predict(os.path.join(videos, name), name)

    routes = [
        Route("/", page),
        Route("/api/status", status),
        Route("/api/predict", upload, methods=["POST"]),
        Route("/api/pick", pick, methods=["POST"]),
        Mount("/media", app=StaticFiles(directory=root), name="media"),
    ]
    app = Starlette(routes=routes)
    app.state.holder = holder
    app.state.root = root
    return app


def save_upload(file, folder, name):
    """Copies an uploaded file into a new file of `folder`, named after it."""
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


def render_page(model_name, run, limit_mb, with_videos):
    return (
        PAGE.replace("{{model}}", html.escape(model_name))
        .replace("{{run}}", html.escape(run_label(run)))
        .replace("{{limit}}", f"{limit_mb:g}")
        .replace("{{pick_hidden}}", "" if with_videos else "hidden")
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{model}}: video results</title>
<style>
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
<script>
"use strict";
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
    const data = await response.json();
    $('working').textContent = '';
    if (!response.ok) { $('error').textContent = data.error || response.statusText; document.body.dataset.failed = '1'; return; }
    render(data);
  } catch (e) { $('working').textContent = ''; $('error').textContent = String(e); }
}
$('upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const file = $('video').files[0];
  if (!file) { $('error').textContent = 'Choose a video file first.'; return; }
  if (file.size > {{limit}} * 1048576) { $('error').textContent = `${file.name}: ${(file.size / 1048576).toFixed(1)} MB is over the limit of {{limit}} MB`; return; }
  const body = new FormData(); body.append('video', file);
  run(fetch('/api/predict', {method: 'POST', body}), file.name);
});
$('pick-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('pick').value;
  run(fetch('/api/pick', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name})}), name);
});
poll();
</script>
</body></html>
"""

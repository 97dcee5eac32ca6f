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

Jobs. Every upload or pick is a job, run in a thread of its own, one
prediction at a time. A request that sends `Prefer: respond-async` (the
page's own requests do) is answered at once (202) with the job: its id, and
`Location: /api/jobs/<id>`, which tells where the job is (its stage, how
much of a counting stage is done, the seconds since it started, the stages
it went through) and, once done, its result or its error; the stages come
from the prediction itself (`train.serving.prediction.report_progress`).
Without that header the request waits for the job and answers its result,
as a script expects. A video that is already being predicted (the same
bytes, uploaded or picked again, from this page or another) is never
predicted twice: the request joins the running job (`"joined": true`) and
gets its result.

What is returned holds no path of the server: a result names its video by
the name it was uploaded or picked as, its run by the run's last two folder
names, and its files by the URLs the page serves them at (`urls`, and `url`
in every keyframe); every other absolute path in a result, in a JSON file
served under `/media/`, or in a message is cut to its last part.

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
import hashlib
import html
import json
import os
import re
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
# Uploads received or waiting for their prediction at once; more are
# refused (503), so that visitors cannot fill the disk with many uploads in
# flight.
MAX_UPLOADS_IN_FLIGHT = 2
# Finished jobs kept for the pages that poll them; the oldest go first.
KEPT_JOBS = 50
# The header a request sends to be answered at once with its job (RFC 7240).
ASYNC_PREFERENCE = "respond-async"


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

    def predict(self, video, root, progress=None):
        """Waits for the model, then predicts `video` into a new folder of
        `root`; `progress(stage, done, total)` hears its stages (see
        `train.serving.prediction.predict_one`)."""
        from train.serving.prediction import predict_one  # TensorFlow: see _load

        self.ready.wait()
        if self.error:
            raise ModelNotLoaded(self.error)
        with self.lock:  # one prediction at a time: one model, two cores
            return predict_one(self.predictor, video, root, progress=progress)


class Job:
    """One video's prediction as the page follows it.

    Args:
        name: the video's name, as uploaded or picked.
        key: what makes two requests the same video (a digest of its bytes).
    """

    def __init__(self, name, key):
        self.id = secrets.token_urlsafe(9)
        self.name = name
        self.key = key
        self.started = time.monotonic()
        self.stages = []  # (stage, seconds after the start it began)
        self.stage = None
        self.done = None
        self.total = None
        self.result = None
        self.error = None
        self.status = 200
        self.joins = 0  # requests for the same video that joined this job
        self.finished = threading.Event()

    def update(self, stage, done=None, total=None):
        """The job is at `stage`, `done` of `total` when it counts; returns
        whether the stage is a new one."""
        self.done, self.total = done, total
        if stage == self.stage:
            return False
        self.stage = stage
        self.stages.append((stage, round(time.monotonic() - self.started, 2)))
        return True

    def succeed(self, result):
        self.result = result
        self.finished.set()

    def fail(self, message, status):
        self.error, self.status = message, status
        self.finished.set()

    @property
    def state(self):
        if not self.finished.is_set():
            return "running"
        return "failed" if self.error is not None else "done"

    def to_json(self):
        """What `/api/jobs/<id>` answers."""
        answer = {
            "job": self.id, "video": self.name, "state": self.state, "stage": self.stage,
            "done": self.done, "total": self.total,
            "elapsed": round(time.monotonic() - self.started, 2),
            "stages": [{"stage": stage, "started": started} for stage, started in self.stages],
        }
        if self.result is not None:
            answer["result"] = self.result
        if self.error is not None:
            answer["error"] = self.error  # cut of paths where the job failed
        return answer


class JobBoard:
    """The page's jobs: each runs in a thread of its own, and a video
    already running is joined, never started again.

    `observers` are called with the job in its thread whenever it enters a
    new stage (e.g. to log it, or for a test to hold a job at a stage).
    """

    def __init__(self, keep=KEPT_JOBS):
        self.keep = keep
        self.jobs = {}  # id -> Job, oldest first
        self.observers = []
        self.lock = threading.Lock()

    def start(self, name, key, work):
        """(job, joined): the running job of `key` if there is one, else a
        new job running `work(job)` in a thread of its own."""
        with self.lock:
            for job in self.jobs.values():
                if job.key == key and not job.finished.is_set():
                    job.joins += 1
                    return job, True
            job = Job(name, key)
            self.jobs[job.id] = job
            finished = [old for old in self.jobs.values() if old.finished.is_set()]
            for old in finished[:max(0, len(self.jobs) - self.keep)]:
                del self.jobs[old.id]
        try:
            threading.Thread(target=work, args=(job,), name=f"job-{job.id}", daemon=True).start()
        except BaseException:  # no thread: the job must not be left running for joiners
            job.fail("the server could not start the job", 503)
            raise
        return job, False

    def update(self, job, stage, done=None, total=None):
        """Moves `job` on (a `report_progress` listener, bound to a job)."""
        if job.update(stage, done, total):
            for observer in list(self.observers):
                observer(job)

    def get(self, job_id):
        with self.lock:
            return self.jobs.get(job_id)


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
        Older results are removed while the folders take too much. The
        answer still holds the files' paths: see `public_result`."""
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


# An absolute POSIX path standing alone or within a message: a "/" that
# follows no word, dot, colon or slash (so neither "1/2", "km/h" nor a URL),
# and the parts after it.
_ABSOLUTE_PATH = re.compile(r"""(?<![\w.:/~-])(?:/[^/\s'"<>()\[\],;:]+)+/?""")


def without_paths(value, keep=("url", "urls"), roots=()):
    """`value` (JSON: dicts, lists, strings, numbers) with every absolute
    path in its strings cut to its last part; the values of the keys
    `keep` (the URLs the page serves) are left as they are.

    The folders `roots` (the server's own: the run, its results, uploads)
    are cut first wherever they appear, spaces in their names or not; a
    string that is one absolute path becomes its last part; any other
    absolute path in a message is cut at the characters that end a word.

    Example:

    >>> without_paths({"video": "/tmp/x/clip.mp4", "note": "cannot open /srv/a b.mp4: gone",
    ...                "ratio": "1/2", "url": "/media/clip/summary.mp4"})
    {'video': 'clip.mp4', 'note': 'cannot open a b.mp4: gone', 'ratio': '1/2', 'url': '/media/clip/summary.mp4'}
    >>> without_paths("cannot open /home/me/My Runs/up/a.mp4 (gone)", roots=["/home/me/My Runs/up"])
    'cannot open a.mp4 (gone)'
    """
    if isinstance(value, str):
        for root in sorted(roots, key=len, reverse=True):
            value = value.replace(root.rstrip(os.sep) + os.sep, "")
        if os.path.isabs(value) and "\n" not in value:
            return os.path.basename(value.rstrip(os.sep))
        return _ABSOLUTE_PATH.sub(lambda match: os.path.basename(match.group().rstrip("/")), value)
    if isinstance(value, dict):
        return {key: item if key in keep else without_paths(item, keep, roots)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_paths(item, keep, roots) for item in value]
    return value


def server_roots(*folders):
    """The folders `without_paths` cuts: each as given, made absolute, and
    with its links resolved (never the file system's root itself)."""
    roots = set()
    for folder in folders:
        if folder:
            roots.update({os.fspath(folder), os.path.abspath(folder), os.path.realpath(folder)})
    return sorted(roots - {os.sep, ""})


def public_result(result, video_name, run, roots=()):
    """A result as the page and the API show it: its video by the name it
    was uploaded or picked as, its run by `run_label`, its files by their
    URLs only (no `files`, no keyframe `image`), no other path."""
    result = {key: value for key, value in result.items() if key != "files"}
    result["video"] = video_name
    if result.get("run"):
        result["run"] = run_label(run)
    if result.get("keyframes"):
        result["keyframes"] = [{key: value for key, value in keyframe.items() if key != "image"}
                               for keyframe in result["keyframes"]]
    return without_paths(result, roots=roots)


def file_digest(path):
    """The SHA-256 of a file's bytes, as hex: what makes two uploads the same video."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


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
    import anyio
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.formparsers import MultiPartParser
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
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
    jobs = JobBoard()
    roots = server_roots(run, root, uploads, videos)

    def hidden(value):
        return without_paths(value, roots=roots)

    def pickable():
        if not videos:
            return []
        return [os.path.relpath(path, videos) for path in list_videos(videos, exclude=root)]

    def error(message, status):
        return JSONResponse({"error": hidden(message)}, status_code=status)

    def run_gone():
        if not os.path.isdir(run) or not os.path.isfile(os.path.join(run, run_folder.BEST)):
            return error(f"the run folder {run_label(run)} (or its {run_folder.BEST}) is gone; "
                         "start train.app again with a run that exists", 503)
        return None

    def predict_job(job, video, upload_slot=False):
        """Runs in the job's thread: checks and predicts `video`; an
        upload is removed, and its slot freed, when the job ends."""
        try:
            jobs.update(job, "checking the video")
            check_video(video)
            jobs.update(job, "waiting for the model")
            result = holder.predict(video, root, lambda *stage: jobs.update(job, *stage))
            outcome = (public_result(store.add(result), job.name, run, roots), None)
        except VideoError as problem:
            outcome = (None, (f"{job.name}: {problem.problem}", 415))
        except ModelNotLoaded as problem:
            outcome = (None, (f"the run could not be loaded: {problem}", 503))
        except ValueError as problem:
            outcome = (None, (f"{job.name}: {problem}", 422))
        except BaseException as problem:  # the page shows it; the server goes on
            outcome = (None, (f"the server failed: {type(problem).__name__}: {problem}", 500))
        finally:
            # The upload's slot is free before the job is seen to end.
            if upload_slot:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(video)
                in_flight.release()
        result, failure = outcome
        if failure is None:
            job.succeed(result)
        else:
            job.fail(hidden(failure[0]), failure[1])

    async def answer(request, job, joined):
        """The job at once (202) when the request prefers it, else its
        result (or error) once it is done."""
        if ASYNC_PREFERENCE in request.headers.get("prefer", "").lower():
            return JSONResponse({**job.to_json(), "joined": joined}, status_code=202,
                                headers={"location": f"/api/jobs/{job.id}"})
        while not job.finished.is_set():
            await anyio.sleep(0.05)
        if job.error is not None:
            return error(job.error, job.status)
        return JSONResponse(job.result)

    async def page(request: Request):
        return HTMLResponse(render_page(record["model"], run, limit_mb, bool(videos),
                                        request.scope["state"]["nonce"], token))

    async def status(request: Request):
        return JSONResponse({
            "state": holder.state(), "model": record["model"],
            "error": None if holder.error is None else hidden(holder.error),
            "videos": pickable(), "max_upload_mb": limit_mb, "token": token,
        })

    async def job_status(request: Request):
        job = jobs.get(request.path_params["job"])
        if job is None:
            return error("no such job (finished jobs are kept for a while only)", 404)
        return JSONResponse(job.to_json())

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
        handed_over = False  # the job removes the upload and frees its slot
        released = False

        def release():
            """Frees the slot and removes the upload (once): it is not kept
            once refused or joined."""
            nonlocal released
            if released:
                return
            released = True
            in_flight.release()
            if saved is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(saved)
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
                    key = await run_in_threadpool(file_digest, saved)
                except OSError as problem:
                    return error(f"{name}: cannot be stored in the upload folder "
                                 f"({problem.strerror or problem})", 507)
            finally:
                await form.close()
            job, joined = jobs.start(
                name, key, lambda job: predict_job(job, saved, upload_slot=True))
            handed_over = not joined
            if joined:  # the copy and its slot go now, not when the job ends
                release()
            return await answer(request, job, joined)
        finally:
            if not handed_over:
                release()

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
        video = os.path.join(videos, name)
        try:
            key = await run_in_threadpool(file_digest, video)
        except OSError as problem:
            return error(f"{name}: cannot be read ({problem.strerror or problem})", 404)
        job, joined = jobs.start(name, key, lambda job: predict_job(job, video))
        return await answer(request, job, joined)

    async def media(request: Request):
        path = store.path(request.path_params["name"])
        if path is None:
            return error("not a file of a result of this page", 404)
        if path.endswith(".json"):  # a result's JSON files name server paths
            with open(path, encoding="utf-8") as file:
                content = hidden(json.load(file))
            return Response(json.dumps(content, indent=1), media_type="application/json")
        return FileResponse(path)

    async def server_error(request: Request, problem: Exception):
        return error(f"the server failed: {type(problem).__name__}: {problem}", 500)

    routes = [
        Route("/", page),
        Route("/api/status", status),
        Route("/api/predict", upload, methods=["POST"]),
        Route("/api/pick", pick, methods=["POST"]),
        Route("/api/jobs/{job}", job_status),
        Route("/media/{name:path}", media),
    ]
    app = Starlette(
        routes=routes, exception_handlers={Exception: server_error},
        middleware=[Middleware(PageGuard, allowed_hosts=allowed_hosts, token=token)],
    )
    app.state.holder = holder
    app.state.root = root
    app.state.store = store
    app.state.jobs = jobs
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
#progress { border: 1px solid #ddd; border-radius: 4px; padding: .5em .8em; max-width: 640px; }
#progress p { margin: .2em 0; }
#progress-bar { width: 100%; height: 14px; }
#progress-stages { margin: .3em 0 0; padding-left: 1.4em; font-size: .85em; color: #555; }
#progress-stages li.current { color: #222; font-weight: 600; }
#progress-note, #notes { color: #a60; }
#trained-on { color: #555; margin: .2em 0; }
#progress-count:not(:empty)::after { content: " · "; }
.video-name { color: #666; font-weight: normal; }
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
<section id="progress" hidden aria-live="polite">
  <p><strong id="progress-video"></strong>: <span id="progress-stage"></span></p>
  <progress id="progress-bar" max="1"></progress>
  <p><span id="progress-count"></span> <span id="progress-elapsed"></span></p>
  <p id="progress-note"></p>
  <ol id="progress-stages"></ol>
</section>
<p id="error"></p>
<div id="result" hidden>
  <section id="about"><p id="trained-on"></p><ul id="notes"></ul></section>
  <section id="summary_video-section" hidden><h2>Summary <span class="video-name"></span></h2>
    <video id="summary" controls muted playsinline preload="auto"></video>
    <p id="summary-caption"></p></section>
  <section id="keyframes-section" hidden><h2>Keyframes <span class="video-name"></span></h2><div class="keyframes" id="keyframes"></div></section>
  <section id="curve-section" hidden><h2>Score curve <span class="video-name"></span></h2><img class="plot" id="score-plot" alt="score over time"></section>
  <section id="labels-section" hidden><h2>Top labels <span class="video-name"></span></h2><table id="top"></table></section>
  <section id="timeline-section" hidden><h2>Timeline <span class="video-name"></span></h2>
    <img class="plot" id="timeline-plot" alt="class probability over time"><table id="timeline"></table></section>
  <section id="explanation-section" hidden><h2>What the model looked at <span class="video-name"></span></h2>
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
let busy = false;
function show(id, on) { $(id).hidden = !on; }
function cell(row, text) { const td = document.createElement('td'); td.textContent = text; row.appendChild(td); return td; }
function header(table, names) {
  const row = table.createTHead().insertRow();
  for (const name of names) { const th = document.createElement('th'); th.textContent = name; row.appendChild(th); }
}
function setBusy(on) {
  // The buttons stay off while a job runs, so that one click runs one job.
  busy = on;
  for (const id of ['go', 'pick-go']) $(id).disabled = on || !ready;
  for (const id of ['video', 'pick']) $(id).disabled = on;
  document.body.dataset.running = on ? '1' : '';
}
async function poll() {
  try {
    const status = await (await fetch('/api/status')).json();
    $('status').textContent = status.state === 'loading' ? 'loading…' : status.state;
    $('status').className = status.state;
    if (status.error) { $('error').textContent = status.error; }
    if (status.state === 'ready' && !ready) {
      ready = true; setBusy(busy);
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
    $('summary-caption').textContent = `summary ${data.summary_seconds} s of ${data.duration} s · shots ${(data.shots || []).length}`;
  },
  keyframes(data) {
    const frames = $('keyframes'); frames.innerHTML = '';
    for (const k of data.keyframes || []) {
      const fig = document.createElement('figure'); const img = document.createElement('img');
      img.src = k.url; img.className = 'keyframe'; img.alt = `frame ${k.frame}`;
      const cap = document.createElement('figcaption'); cap.textContent = `time ${k.time.toFixed(2)} s · score ${k.score.toFixed(2)}`;
      fig.appendChild(img); fig.appendChild(cap); frames.appendChild(fig);
    }
  },
  curve(data, urls) { $('score-plot').src = urls.score_plot; },
  labels(data) {
    const top = $('top'); top.innerHTML = ''; header(top, ['label', 'probability', '']);
    const body = top.createTBody();
    for (const t of data.top || []) {
      const row = document.createElement('tr'); row.className = 'label';
      cell(row, t.label); cell(row, t.probability.toFixed(3));
      const bar = cell(row, ''); bar.className = 'bar'; const fill = document.createElement('div');
      fill.style.width = (100 * t.probability).toFixed(1) + '%'; bar.appendChild(fill);
      body.appendChild(row);
    }
  },
  timeline(data, urls) {
    const timeline = $('timeline'); timeline.innerHTML = ''; header(timeline, ['window', 'label', 'probability']);
    const body = timeline.createTBody();
    for (const w of data.timeline || []) {
      const row = document.createElement('tr'); row.className = 'window';
      cell(row, `${w.start.toFixed(1)}–${w.end.toFixed(1)} s`); cell(row, w.label); cell(row, w.probability.toFixed(3));
      body.appendChild(row);
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
  for (const span of document.querySelectorAll('.video-name')) span.textContent = `· ${data.video}`;
  const trained = data.trained_on || {};
  $('trained-on').textContent = `trained on ${trained.data || 'unknown data'}` +
    (trained.classes && trained.classes.length ? ` · classes ${trained.classes.join(', ')}` : '') +
    (trained.preset ? ` · preset ${trained.preset}` : '');
  const notes = $('notes'); notes.innerHTML = '';
  for (const note of data.notes || []) {
    const item = document.createElement('li'); item.textContent = note; notes.appendChild(item);
  }
  const urls = data.urls || {};
  for (const name of Object.keys(RENDERERS)) show(`${name}-section`, false);
  for (const name of data.sections || []) {
    if (!RENDERERS[name]) continue;  // a section this page does not know
    RENDERERS[name](data, urls);
    show(`${name}-section`, true);
  }
  document.body.dataset.done = String(Number(document.body.dataset.done || 0) + 1);
}
// Progress: the upload as the browser sends it, then the job's stages as
// the server reports them; elapsed time counts from the click.
let clock = null;
function showProgress(video, stage, done, total, stages) {
  show('progress', true);
  $('progress-video').textContent = video;
  $('progress-stage').textContent = stage || 'starting';
  const bar = $('progress-bar');
  if (total) { bar.value = done / total; $('progress-count').textContent = `${done} of ${total} · ${Math.floor(100 * done / total)}%`; }
  else { bar.removeAttribute('value'); $('progress-count').textContent = ''; }
  if (stages) {
    const list = $('progress-stages'); list.innerHTML = '';
    for (const [index, entry] of stages.entries()) {
      const item = document.createElement('li'); const next = stages[index + 1];
      item.textContent = next ? `${entry.stage}: ${(next.started - entry.started).toFixed(1)} s` : entry.stage;
      if (!next) item.className = 'current';
      list.appendChild(item);
    }
  }
  document.body.dataset.stage = stage || '';
}
function startClock() {
  const started = performance.now();
  const tick = () => { $('progress-elapsed').textContent = `elapsed ${((performance.now() - started) / 1000).toFixed(1)} s`; };
  tick(); clock = setInterval(tick, 200);
}
function endJob() {
  clearInterval(clock); show('progress', false); $('progress-note').textContent = ''; setBusy(false);
}
function fail(message) { $('error').textContent = message; document.body.dataset.failed = '1'; }
// POSTs as XMLHttpRequest, which reports the upload's progress; the page
// asks to be answered at once with the job, and follows it.
function send(url, body, headers, onUpload) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open('POST', url);
    for (const [name, value] of Object.entries({...headers, 'X-Page-Token': TOKEN, 'Prefer': 'respond-async'})) request.setRequestHeader(name, value);
    if (onUpload) request.upload.onprogress = (event) => onUpload(event.loaded, event.lengthComputable ? event.total : 0);
    request.onload = () => {
      let data;
      try { data = JSON.parse(request.responseText); } catch (e) { data = {error: `${request.status} ${request.statusText}: the server sent no result`}; }
      resolve({status: request.status, data});
    };
    request.onerror = () => resolve({status: 0, data: {error: 'the server cannot be reached'}});
    request.send(body);
  });
}
async function follow(job) {
  for (;;) {
    showProgress(job.video, job.stage, job.done, job.total, job.stages);
    if (job.state !== 'running') return job;
    await new Promise((resolve) => setTimeout(resolve, 300));
    const response = await fetch(`/api/jobs/${job.job}`);
    const data = await response.json();
    if (!response.ok) return {state: 'failed', error: data.error || response.statusText};
    job = data;
  }
}
async function run(url, body, headers, what, uploading) {
  if (busy) return;
  setBusy(true);
  $('error').textContent = ''; show('result', false); $('progress-stages').innerHTML = '';
  startClock();
  showProgress(what, uploading ? 'uploading' : 'sending', 0, 0);
  try {
    const onUpload = uploading ? (done, total) => showProgress(what, 'uploading', done, total) : null;
    const {status, data} = await send(url, body, headers, onUpload);
    if (status !== 202 && status !== 200 || data.error) { fail(data.error || `${status}: the server refused it`); return; }
    if (data.joined) $('progress-note').textContent = `${data.video} is already being processed; this page follows that job`;
    const job = status === 202 ? await follow(data) : {state: 'done', result: data};
    if (job.state === 'failed') { fail(job.error); return; }
    render(job.result);
  } catch (e) { fail(String(e)); }
  finally { endJob(); }
}
$('upload-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const file = $('video').files[0];
  if (!file) { $('error').textContent = 'Choose a video file first.'; return; }
  if (file.size > {{limit}} * 1048576) { $('error').textContent = `${file.name}: ${(file.size / 1048576).toFixed(1)} MB is over the limit of {{limit}} MB`; return; }
  const body = new FormData(); body.append('video', file);
  run('/api/predict', body, {}, file.name, true);
});
$('pick-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('pick').value;
  run('/api/pick', JSON.stringify({name}), {'Content-Type': 'application/json'}, name, false);
});
poll();
</script>
</body></html>
"""

"""The screenshots of `train.app`'s page and the Grad-CAM strip in the
documentation.

    python -m tests.page_screenshots [--out docs] [--only page|strip]

Trains a tiny keyframe_transformer run for a few steps on the embedded
synthetic set, writes a real video of coloured scenes (`cv2.VideoWriter`,
through `tests.prediction_fixtures.write_scene_video`), serves the run's
page and uploads the video in headless Chromium (`tests.page_browser`).
Writes, into `--out`:

- `app_progress.png`: the page mid-job, the job held (`StageGate`) as it
  writes the summary video;
- `app.png`: the page with the result loaded (summary video, keyframes,
  score curve);
- `explain_gradcam_r2plus1d.png`: the `--explain` strip of a small
  r2plus1d run (`STRIP_RUN`, trained on the embedded motion clips) on an
  8 s video of four scenes, a disk or a square moving over a noisy
  background (`write_moving_shapes_video`), with 2 s windows;
- `explain_attention_keyframe.png`: the attention curve of the keyframe
  demo run trained for 3 epochs (`CURVE_RUN`) on the same video.

The page takes about a minute on two cores and needs chromium,
chromedriver and selenium; the strip trains for about two minutes.
"""

import argparse
import os
import shutil
import tempfile
import time

import cv2
import numpy as np

from tests.page_browser import StageGate, start_browser, wait_for
from tests.prediction_fixtures import write_scene_video

VIDEO_NAME = "scenes.mp4"
HELD_AT = "writing the summary video"
TINY_RUN = [
    "--model", "keyframe_transformer", "--model-dim", "16", "--num-layers", "1",
    "--num-heads", "2", "--ff-dim", "32", "--scorer-units", "8", "--batch-size", "4",
    "--epochs", "2", "--synthetic-videos", "10", "--verbose", "0", "--run-eagerly",
]

STRIP_RUN = [
    "--model", "r2plus1d", "--preset", "demo", "--cnn-blocks", "2", "--widths", "16,32,64,128",
    "--input-shape", "8,32,32,3", "--num-classes", "2", "--epochs", "4",
    "--synthetic-clips", "64", "--verbose", "0",
]
CURVE_RUN = ["--model", "keyframe_transformer", "--epochs", "3", "--seed", "0", "--verbose", "0"]


def train_tiny_run(folder):
    """A keyframe_transformer run trained briefly into `folder`."""
    from train import run

    if run.main([*TINY_RUN, "--out", folder]) != 0:
        raise RuntimeError(f"training the run in {folder} failed")
    return folder


def take_screenshots(out, work):
    """Writes `app_progress.png` and `app.png` into `out`; `work` holds
    the run, the video and the results."""
    from selenium.webdriver.common.by import By

    from train.serving.app import create_app, serve_in_thread

    video = os.path.join(work, VIDEO_NAME)
    write_scene_video(video, seconds=10.0, fps=25.0, scenes=5, size=(180, 320))
    run = train_tiny_run(os.path.join(work, "keyframe_transformer", "tiny"))
    app = create_app(run, out=os.path.join(work, "out"))
    os.makedirs(out, exist_ok=True)
    driver, profile = start_browser(width=1000, height=540)
    gate = StageGate(app.state.jobs, VIDEO_NAME, [HELD_AT])
    try:
        with serve_in_thread(app) as url:
            driver.get(url + "/")
            wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready"))
            driver.find_element(By.ID, "video").send_keys(video)
            driver.find_element(By.ID, "go").click()
            gate.wait(HELD_AT)
            wait_for(driver, lambda d: d.execute_script(
                "return document.body.dataset.stage") == HELD_AT)
            time.sleep(1.0)  # a second on the elapsed clock
            driver.save_screenshot(os.path.join(out, "app_progress.png"))
            gate.release(HELD_AT)
            driver.set_window_size(1000, 1270)
            wait_for(driver, lambda d: d.execute_script(
                "return document.body.dataset.done || document.body.dataset.failed"))
            error = driver.find_element(By.ID, "error").text
            if error:
                raise RuntimeError(f"the page failed: {error}")
            wait_for(driver, lambda d: d.execute_script(
                "return [...document.querySelectorAll('img.keyframe, #score-plot')]"
                ".every(i => i.complete && i.naturalWidth > 0)"), timeout=30)
            driver.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const video = document.getElementById('summary');
                // Played a moment, so that the frame shows without a loading spinner.
                video.play().then(() => setTimeout(() => {
                  video.pause();
                  video.addEventListener('seeked', () => setTimeout(done, 800), {once: true});
                  video.currentTime = 0.4;
                }, 600)).catch(() => done());""")
            driver.save_screenshot(os.path.join(out, "app.png"))
    finally:
        gate.close()
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def write_moving_shapes_video(path, seed=0):
    """8 s of 320x240 at 25 fps: four 2 s scenes, a disk or a square moving
    horizontally, vertically or diagonally over a noisy dark background."""
    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240))
    for shape, (dx, dy) in [("disk", (1, 0)), ("square", (0, 1)), ("disk", (1, 1)),
                            ("square", (1, 0))]:
        background = rng.integers(40, 90, (240, 320, 3))
        for step in range(50):
            frame = np.clip(background + rng.integers(-8, 8, background.shape), 0, 255)
            frame = frame.astype(np.uint8)
            x, y = 40 + dx * 4 * step, 40 + dy * 3 * step
            if shape == "disk":
                cv2.circle(frame, (x, y), 22, (230, 200, 60), -1)
            else:
                cv2.rectangle(frame, (x - 20, y - 20), (x + 20, y + 20), (60, 210, 240), -1)
            writer.write(frame)
    writer.release()
    return path


def explanation_strip(out, work):
    """Writes `explain_gradcam_r2plus1d.png` into `out`."""
    from train import predict, run

    folder = os.path.join(work, "r2plus1d")
    if run.main([*STRIP_RUN, "--out", folder]) != 0:
        raise RuntimeError(f"training the run in {folder} failed")
    video = write_moving_shapes_video(os.path.join(work, "shapes.mp4"))
    if predict.main(["--run", folder, "--video", video, "--window", "2", "--stride", "2",
                     "--explain", "--no-progress"]) != 0:
        raise RuntimeError("the prediction failed")
    target = os.path.join(out, "explain_gradcam_r2plus1d.png")
    shutil.copyfile(os.path.join(folder, "predictions", "shapes", "explanation.png"), target)
    return target


def attention_curve(out, work):
    """Writes `explain_attention_keyframe.png` into `out`: the `--explain`
    curve of the keyframe demo run (`CURVE_RUN`) on the same video."""
    from train import predict, run

    folder = os.path.join(work, "keyframe_transformer")
    if run.main([*CURVE_RUN, "--out", folder]) != 0:
        raise RuntimeError(f"training the run in {folder} failed")
    video = write_moving_shapes_video(os.path.join(work, "shapes.mp4"))
    if predict.main(["--run", folder, "--video", video, "--explain", "--no-progress"]) != 0:
        raise RuntimeError("the prediction failed")
    target = os.path.join(out, "explain_attention_keyframe.png")
    shutil.copyfile(os.path.join(folder, "predictions", "shapes", "explanation.png"), target)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.page_screenshots",
                                     description="Screenshots of train.app's page for the docs.")
    parser.add_argument("--out", default="docs", help="folder the images are written to")
    parser.add_argument("--only", choices=("page", "strip"), default=None,
                        help="only the page's screenshots, or only the explanation images")
    args = parser.parse_args(argv)
    written = []
    with tempfile.TemporaryDirectory(prefix="page-screenshots-") as work:
        if args.only in (None, "page"):
            take_screenshots(args.out, work)
            written += [os.path.join(args.out, name) for name in ("app_progress.png", "app.png")]
        if args.only in (None, "strip"):
            written.append(explanation_strip(args.out, work))
            written.append(attention_curve(args.out, work))
    print("\n".join(written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

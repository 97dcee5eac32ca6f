"""The screenshots of `train.app`'s page in the documentation.

    python -m tests.page_screenshots [--out docs]

Trains a tiny keyframe_transformer run for a few steps on the embedded
synthetic set, writes a real video of coloured scenes (`cv2.VideoWriter`,
through `tests.prediction_fixtures.write_scene_video`), serves the run's
page and uploads the video in headless Chromium (`tests.page_browser`).
Writes, into `--out`:

- `app_progress.png`: the page mid-job, the job held (`StageGate`) as it
  writes the summary video;
- `app.png`: the page with the result loaded (summary video, keyframes,
  score curve).

Takes about a minute on two cores; needs chromium, chromedriver and
selenium.
"""

import argparse
import os
import shutil
import tempfile
import time

from tests.page_browser import StageGate, start_browser, wait_for
from tests.prediction_fixtures import write_scene_video

VIDEO_NAME = "scenes.mp4"
HELD_AT = "writing the summary video"
TINY_RUN = [
    "--model", "keyframe_transformer", "--model-dim", "16", "--num-layers", "1",
    "--num-heads", "2", "--ff-dim", "32", "--scorer-units", "8", "--batch-size", "4",
    "--epochs", "2", "--synthetic-videos", "10", "--verbose", "0", "--run-eagerly",
]


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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.page_screenshots",
                                     description="Screenshots of train.app's page for the docs.")
    parser.add_argument("--out", default="docs", help="folder of app.png and app_progress.png")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="page-screenshots-") as work:
        take_screenshots(args.out, work)
    for name in ("app_progress.png", "app.png"):
        print(os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

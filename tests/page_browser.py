"""A headless Chromium for the page of `train.app`, and jobs held at a stage.

`start_browser()` drives Debian's `chromium` with its `chromedriver`
through selenium; `BrowserMissing` says what is not installed.
`StageGate` holds a job of the page at chosen stages until it is let go
on, so that a test (or a screenshot) sees the page mid-job without waiting
on a slow video.

Example:

    gate = StageGate(app.state.jobs, "clip.mp4", ["writing the summary video"])
    ...  # start the job
    gate.wait("writing the summary video")  # the job is held there
    ...  # look at the page
    gate.close()  # lets every held job go on
"""

import shutil
import tempfile
import threading


class BrowserMissing(Exception):
    """Chromium, chromedriver or selenium is not installed (the message says which)."""


def start_browser(width=1000, height=1250):
    """(driver, profile folder): a headless Chromium of a window of that
    size; the caller quits the driver and removes the profile folder."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        raise BrowserMissing(f"no {' or '.join(missing)} on PATH (Debian: apt-get install "
                             "chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserMissing("selenium is not installed") from None
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--no-default-browser-check",
                 f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # An explicit driver: selenium would otherwise look one up on the network.
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_script_timeout(30)
    return driver, profile


def wait_for(driver, condition, timeout=120):
    """Waits until `condition(driver)` is true; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


class StageGate:
    """Holds the jobs of one video at each of `stages` until `release`.

    An observer of the page's `JobBoard`: it runs in the job's thread as
    the job enters a stage, so a held job stops exactly there, whatever the
    machine's speed.

    Args:
        jobs: the page's `train.serving.app.JobBoard` (`app.state.jobs`).
        video: the name of the video whose jobs are held.
        stages: the stages to hold it at (as `report_progress` names them).
        timeout: seconds a job is held at most, so that a failing test
            never leaves it hanging.
    """

    def __init__(self, jobs, video, stages, timeout=120):
        self.jobs = jobs
        self.video = video
        self.timeout = timeout
        self.reached = {stage: threading.Event() for stage in stages}
        self.released = {stage: threading.Event() for stage in stages}
        jobs.observers.append(self)

    def __call__(self, job):
        if job.name == self.video and job.stage in self.reached:
            self.reached[job.stage].set()
            self.released[job.stage].wait(self.timeout)

    def wait(self, stage):
        """Waits until a job is held at `stage`."""
        if not self.reached[stage].wait(self.timeout):
            raise TimeoutError(f"no job of {self.video} reached {stage!r}")

    def release(self, stage):
        """Lets the job held at `stage` go on."""
        self.released[stage].set()

    def close(self):
        """Lets every job go on and stops holding."""
        for event in self.released.values():
            event.set()
        if self in self.jobs.observers:
            self.jobs.observers.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""Screenshot the MLflow runs page of an experiment, sweeps expanded to their child runs, the compared metrics shown.

Starts `mlflow ui` on the store, drives a system Chromium with Playwright, and always stops the server. Fails when
the Dataset column of a shown run disagrees with its dataset inputs, filled for a run that has some and `-` otherwise.

    python scripts/ui_screenshot.py --tracking-uri sqlite:///mlflow.db --out docs/mlflow-runs.png
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from mlflow import MlflowClient
from playwright.sync_api import Page, sync_playwright

METRICS = ("accuracy", "accuracy_drop", "speedup", "size_mib", "tar_far_1e-3")
HIDDEN_ATTRIBUTES = ("Source", "Models")  # not what the README compares; they push the metrics off-screen
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
START_TIMEOUT_S = 120
PAGE_TIMEOUT_MS = 60_000  # the first page load is slow on a busy 2-core machine
VIEWPORT = {"width": 1600, "height": 900}
RUN_NAME_CELL = '[role="gridcell"][col-id="attributes.`Run Name`"]'
DATASET_CELL = '[role="gridcell"][col-id="attributes.`Dataset`"]'
DATASET_HEADER = '.ag-header-cell[col-id="attributes.`Dataset`"]'
DATASET_WIDTH = 230  # px: the evaluation set's name and most of its digest; the rest of the row is the metrics'
RUN_NAME_RESIZE = '.ag-header-cell[col-id="attributes.`Run Name`"] .ag-header-cell-resize'


class ScreenshotError(RuntimeError):
    """The server, the experiment or the page is not as the screenshot needs."""


def find_chromium() -> str | None:
    """A system Chromium: Playwright's own browser download needs the internet, which CI lacks."""
    return os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(proc: subprocess.Popen, log: IO[bytes], url: str, tracking_uri: str) -> None:
    """Poll /health until the server answers; fail naming the store if it exits or stays silent."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ScreenshotError(
                    f"mlflow ui for {tracking_uri} did not answer at {url} in {START_TIMEOUT_S} s"
                ) from None
            time.sleep(0.5)
    log.seek(0)
    raise ScreenshotError(f"mlflow ui for {tracking_uri} exited {proc.returncode}: {log.read().decode()[-2000:]}")


@contextmanager
def mlflow_ui(tracking_uri: str, port: int) -> Iterator[str]:
    """Serve the store on 127.0.0.1:port until the block ends, then stop the server's whole process group."""
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--port", str(port)]
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--workers", "1"], stdout=log, stderr=log, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(proc, log, url, tracking_uri)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def set_column(page: Page, name: str, shown: bool) -> None:
    """Tick or untick one entry of the runs table's Columns selector, found through its search box."""
    page.get_by_placeholder("Search columns").fill(name)
    title = page.locator('[class*="tree-title"]', has_text=re.compile(rf"^{re.escape(name)}$"))
    node = page.locator('[class*="tree-treenode"]').filter(has=title).first
    node.wait_for()
    if ("checkbox-checked" in (node.get_attribute("class") or "")) != shown:
        node.locator('[class*="tree-checkbox"]').first.click()


def set_width(page: Page, header: str, width: int) -> None:
    """Drag a column header's resize handle until the column is `width` px wide. The handle straddles the border
    with the next header, so it is grabbed just inside this one: grabbed there, the next column would move."""
    box = page.locator(header).bounding_box()
    x, y = box["x"] + box["width"] - 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + width - box["width"], y, steps=5)
    page.mouse.up()


def capture(
    url: str, experiment_id: str, metrics: Sequence[str], out: Path, chromium: str
) -> tuple[int, dict[str, str]]:
    """Open the runs page, show the metric columns, expand every parent run, save the screenshot; return the
    parent runs expanded and each shown row's Dataset cell by run id, so that callers can tell what is on the page."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
            page.locator(RUN_NAME_CELL).first.wait_for()
            close = page.get_by_role("button", name="Close", exact=True)  # the MLflow Assistant side panel
            if close.count():
                close.first.click()
            page.get_by_test_id("column-selection-dropdown").first.click()
            for name in HIDDEN_ATTRIBUTES:
                set_column(page, name, shown=False)
            for name in metrics:
                set_column(page, name, shown=True)
            page.keyboard.press("Escape")
            page.locator(f'[role="gridcell"][col-id="metrics.`{metrics[0]}`"]').first.wait_for()
            expanders = page.locator(f"{RUN_NAME_CELL} button")  # only parent runs have one
            for i in range(expanders.count()):
                expanders.nth(i).click()
            # Fit Run Name to the children's names, now rendered; metric columns keep their width, as fitted to
            # full-precision floats they would push each other off-screen.
            page.locator(RUN_NAME_RESIZE).dblclick()
            set_width(page, DATASET_HEADER, DATASET_WIDTH)
            page.mouse.move(0, VIEWPORT["height"] - 1)
            page.evaluate("document.activeElement?.blur()")
            page.wait_for_timeout(1000)  # let the expanded rows render
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            rows = page.locator('.ag-center-cols-container [role="row"][row-id]')
            datasets = {row.get_attribute("row-id"): row.locator(DATASET_CELL).inner_text() for row in rows.all()}
            return expanders.count(), datasets
        finally:
            browser.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True, help="e.g. sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="facequant")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS), help="metric columns to show")
    args = parser.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        raise ScreenshotError(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}; or set CHROMIUM)")
    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise ScreenshotError(f"no experiment {args.experiment!r} in {args.tracking_uri}")
    runs = client.search_runs([experiment.experiment_id])
    logged = {key for run in runs for key in run.data.metrics}
    metrics = [m for m in args.metrics if m in logged]
    if missing := [m for m in args.metrics if m not in logged]:
        print(f"not logged in {args.experiment!r}, so not shown: {', '.join(missing)}", file=sys.stderr)
    if not metrics:
        raise ScreenshotError(f"none of the metrics {args.metrics} is logged in {args.experiment!r}")
    start = time.perf_counter()
    with mlflow_ui(args.tracking_uri, args.port or free_port()) as url:
        parents, datasets = capture(url, experiment.experiment_id, metrics, args.out, chromium)
    took = time.perf_counter() - start
    with_inputs = {run.info.run_id for run in runs if run.inputs.dataset_inputs}
    filled = {run_id for run_id, text in datasets.items() if text.strip() != "-"}
    if wrong := filled.symmetric_difference(with_inputs & datasets.keys()):
        raise ScreenshotError(
            f"the Dataset column disagrees with the dataset inputs of runs {', '.join(sorted(wrong))}"
        )
    print(
        f"wrote {args.out}: {parents} parent runs expanded, {len(datasets)} rows, Dataset filled in {len(filled)}, "
        f"metrics {', '.join(metrics)} ({took:.0f} s)"
    )


if __name__ == "__main__":
    try:
        main()
    except ScreenshotError as exc:
        sys.exit(f"ui_screenshot: {exc}")

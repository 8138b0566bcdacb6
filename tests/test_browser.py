"""A real-browser test of the exported report: headless Chromium opens report.html and checks that
the tables and figures are there and that every <audio> element loads with a duration.

The report is the session's smoke run (tests/conftest.py: ``serlib.report.runner.run_report`` on the
smoke profile, every notebook, trained by the real pipeline). The browser is driven through the Chrome
DevTools Protocol over a websocket
(``websocket-client``), so no driver or browser download is needed. Needs Debian's ``chromium``
(``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
)

# Waits for every <audio> to load its metadata (or fail), plays the first one briefly, and reports.
PAGE_PROBE = r"""
(async () => {
  const audios = Array.from(document.querySelectorAll('audio'));
  const loaded = a => new Promise(done => {
    if (a.readyState >= 1 || a.error) return done();
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
  });
  await Promise.race([Promise.all(audios.map(loaded)), new Promise(r => setTimeout(r, 30000))]);
  let played = null;
  if (audios.length) {
    const a = audios[0];
    try {
      await a.play();
      for (let i = 0; i < 100 && a.currentTime === 0 && !a.ended; i++) await new Promise(r => setTimeout(r, 50));
      played = a.ended ? a.duration : a.currentTime;
      a.pause();
    } catch (e) { played = 'error: ' + e; }
  }
  return {
    audio: audios.map(a => ({duration: a.duration, readyState: a.readyState, error: a.error && a.error.code})),
    played: played,
    tables: document.querySelectorAll('table').length,
    images: Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth})),
    captions: Array.from(document.querySelectorAll('p > b:first-child')).map(b => b.textContent.trim()),
    toc: Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href')),
    overflowing: Array.from(document.querySelectorAll('.jp-OutputArea-output'))
      .filter(e => e.querySelector('table') && e.scrollWidth > e.clientWidth + 1)
      .map(e => { const c = e.querySelector('p > b');
                  return (c ? c.textContent : '?') + ' ' + e.scrollWidth + '/' + e.clientWidth; }),
    underscored_headers: Array.from(document.querySelectorAll('table.serlib-table th')).map(t => t.textContent)
      .filter(t => t.includes('_')),
    alts: Array.from(document.images).map(i => i.alt),
    first_heading: (document.querySelector('h2') || {}).textContent,
    crossrefs: Array.from(document.querySelectorAll('a[href^="#table-"], a[href^="#fig-"]'))
      .filter(a => !a.closest('nav')).length,
    contents_fixed: getComputedStyle(document.querySelector('nav.serlib-toc')).position,
    height: document.documentElement.scrollHeight,
    supplements_open: Array.from(document.querySelectorAll('details.serlib-supplement')).map(d => d.open),
    body_table_columns: Array.from(document.querySelectorAll('table')).filter(t => !t.closest('details'))
      .map(t => Math.max(0, ...Array.from(t.rows).map(r => Array.from(r.cells).reduce((n, c) => n + c.colSpan, 0)))),
    own_labels: Array.from(document.querySelectorAll('p > b:first-child')).map(b => b.textContent.trim())
      .filter(t => / S\d+\.\d+\.$/.test(t)),
    csv_links: Array.from(document.querySelectorAll('a.serlib-csv')).map(a => a.getAttribute('href')),
    // last: every supplement opened, each table's width in columns with its caption
    all_table_columns: (() => {
      document.querySelectorAll('details').forEach(d => { d.open = true; });
      return Array.from(document.querySelectorAll('table')).map(t => {
        const block = t.closest('.serlib-table, .jp-OutputArea-output');
        const caption = block && block.querySelector('p > b');
        return [caption ? caption.textContent.trim() : '?',
                Math.max(0, ...Array.from(t.rows).map(r => Array.from(r.cells).reduce((n, c) => n + c.colSpan, 0)))];
      });
    })(),
  };
})()
"""

# At a laptop's width: the contents stay in view while the page scrolls, the section in view is highlighted, and a
# link into a collapsed supplement opens it.
LAPTOP_PROBE = """
(async () => {
  const nav = document.querySelector('nav.serlib-toc');
  const settle = () => new Promise(r => setTimeout(r, 300));
  window.scrollTo(0, document.documentElement.scrollHeight / 2);
  await settle();
  const middle = {position: getComputedStyle(nav).position, top: nav.getBoundingClientRect().top,
                  height: nav.getBoundingClientRect().height, viewport: window.innerHeight};
  location.hash = '#nb-05_confusion';
  await settle();
  const current = Array.from(nav.querySelectorAll('li.serlib-current')).map(li => li.dataset.section);
  const target = document.querySelector('details.serlib-supplement [id^="table-s4"]');
  location.hash = '#' + target.id;
  await settle();
  return {middle: middle, current: current, opened: target.closest('details').open, target: target.id};
})()
"""
# The smoke run's report.html measured at 1600 px before the supplements (issue 25; commit 41c7079): 25,655 px.
HEIGHT_BEFORE_PX = 25655


def chromium_binary() -> str | None:
    """Debian's ``chromium`` (or another Chromium/Chrome on PATH)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, url: str, timeout: float = 60.0):
        import websocket

        self.ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((e for e in self.events if e.get("method") == method), None)
            if found:
                return found
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        self.ws.close()


def devtools_port(profile: Path, proc: subprocess.Popen, timeout: float = 30.0) -> int:
    """The port Chromium chose for ``--remote-debugging-port=0`` (from DevToolsActivePort)."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with code {proc.returncode}")
        if marker.is_file() and marker.read_text().strip():
            return int(marker.read_text().split()[0])
        time.sleep(0.2)
    raise TimeoutError(f"chromium wrote no {marker} within {timeout} s")


def open_in_chromium(page: Path, profile: Path, width: int = 1600, probe: str = PAGE_PROBE) -> dict:
    """Open ``page`` in headless Chromium ``width`` pixels wide and return what ``probe`` finds."""
    import urllib.request

    proc = subprocess.Popen(
        [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = devtools_port(profile, proc)
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        target = next(t for t in targets if t.get("type") == "page")
        tools = DevTools(target["webSocketDebuggerUrl"])
        try:
            tools.call("Page.enable")
            tools.call(
                "Emulation.setDeviceMetricsOverride", width=width, height=1000, deviceScaleFactor=1, mobile=False
            )
            tools.call("Page.navigate", url=page.resolve().as_uri())
            tools.wait_event("Page.loadEventFired")
            result = tools.call(
                "Runtime.evaluate", expression=probe, awaitPromise=True, returnByValue=True, timeout=60000
            )
        finally:
            tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if "exceptionDetails" in result:
        raise RuntimeError(f"page probe failed: {result['exceptionDetails']}")
    return result["result"]["value"]


def test_report_opens_in_headless_chromium(smoke_run, tmp_path):
    import pandas as pd

    pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium over DevTools")
    report = smoke_run.report  # tests/conftest.py: the session's smoke run, every notebook in its report
    clips = pd.read_csv(smoke_run.tables / "table_s50.csv").merge(
        pd.read_csv(smoke_run.manifest)[["utt_id", "duration_s"]], on="utt_id"
    )
    html = report.read_text(encoding="utf-8")
    assert '<script src="http' not in html and "https://cdn" not in html  # opens offline
    assert html.count("<audio") == len(clips) >= 1

    page = open_in_chromium(report, tmp_path / "chromium-profile")

    assert len(page["audio"]) == len(clips)
    for audio, seconds in zip(page["audio"], clips["duration_s"]):
        assert audio["error"] is None and audio["readyState"] >= 1, audio
        assert audio["duration"] == pytest.approx(seconds, abs=0.05)  # the clip's own length
    assert isinstance(page["played"], (int, float)) and page["played"] > 0, page["played"]
    for label in ("Table 1", "Table 5", "Table 7", "Fig. 3", "Fig. 4"):  # the paper's own, under its numbers
        assert f"{label}." in page["captions"], (label, page["captions"])
    for kind in ("Table", "Fig."):  # this run's own numbered per section in reading order: S3.1, S3.2, ...
        own = [t[len(kind) + 2 : -1].split(".") for t in page["own_labels"] if t.startswith(kind)]
        sections = [int(section) for section, _ in own]
        assert sections == sorted(sections), own  # the sections in order
        for section in set(sections):
            numbers = [int(n) for s, n in own if int(s) == section]
            assert numbers == list(range(1, len(numbers) + 1)), own  # none skipped, none out of order
    assert len(page["own_labels"]) >= 20
    # a paper body and a collapsed supplement per section; every table of the body at most 9 columns wide
    assert len(page["supplements_open"]) >= 5 and not any(page["supplements_open"])
    assert page["height"] <= HEIGHT_BEFORE_PX / 2, page["height"]
    assert max(page["body_table_columns"]) <= 9, page["body_table_columns"]
    # with every supplement opened, no table wider than 9 columns (the CSV keeps every column)
    assert len(page["all_table_columns"]) > len(page["body_table_columns"])
    assert [t for t in page["all_table_columns"] if t[1] > 9] == [], page["all_table_columns"]
    # every S-table's caption links to its CSV, relative to the report
    assert len(page["csv_links"]) >= 20
    for href in page["csv_links"]:
        assert href.startswith("tables/") and (smoke_run.root / href).is_file(), href
    assert page["tables"] >= 8
    figures = [i for i in page["images"] if i["complete"] and i["width"] > 100]
    assert len(figures) >= 2 and len(figures) == len(page["images"])  # every image decoded
    assert "#fig-4" in page["toc"] and "#table-s50" in page["toc"]
    # Results first, readable tables, sharp captioned figures, no machine path.
    assert page["first_heading"] == "Key results" and "#key-results" in page["toc"]
    assert page["contents_fixed"] == "fixed"  # the contents stay in view on a wide screen
    laptop = open_in_chromium(report, tmp_path / "chromium-laptop", width=1000, probe=LAPTOP_PROBE)
    assert laptop["middle"]["position"] == "fixed" and laptop["middle"]["top"] == 0, laptop
    assert laptop["middle"]["height"] <= laptop["middle"]["viewport"], laptop  # not a page-long block
    assert laptop["current"] == ["nb-05_confusion"], laptop
    assert laptop["opened"], laptop  # a link into a collapsed supplement opens it
    assert page["overflowing"] == [], page["overflowing"]  # every table fits the report's column
    assert page["underscored_headers"] == [], page["underscored_headers"]
    assert page["crossrefs"] >= 5  # "Table 5", "Fig. 3" ... in the text link to their captions
    assert all(alt.startswith(("Fig.", "Figure", "Table")) for alt in page["alts"]), page["alts"]
    for machine in (str(smoke_run.root.resolve()), str(Path(__file__).resolve().parents[1]), str(Path.home()) + "/"):
        assert machine not in html, machine

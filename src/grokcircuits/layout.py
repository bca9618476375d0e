"""Does a built page fit its column? Measured in a headless browser, not guessed from the Markdown.

    python -m grokcircuits.layout _build/html/index.html --width 1280

Loads a copy of the page in headless Chromium at the given window width with a script appended that
records, for every table, its full width (`scrollWidth`) and the width of the column that holds it
(the table's container's `clientWidth`), and reads them back from the DOM Chromium dumps. A table
wider than its column scrolls sideways: the reader at that width does not see it whole.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_MEASURE = """<script>
window.addEventListener('load', function () {
  var rows = Array.from(document.querySelectorAll('main table, article table')).map(function (t) {
    var column = t.closest('.bd-article-container, main, article') || t.parentElement;
    var box = t.parentElement;
    return {table: t.scrollWidth, holder: box.clientWidth, column: column.clientWidth,
            heading: (t.closest('section') && t.closest('section').querySelector('h1, h2') || {}).textContent || ''};
  });
  var out = document.createElement('pre');
  out.id = 'layout-measure';
  out.textContent = JSON.stringify(rows);
  document.body.appendChild(out);
});
</script>"""


class LayoutError(RuntimeError):
    """The page cannot be measured (no browser, no page); the message says what to do."""


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise LayoutError(f"no headless browser found (tried {', '.join(BROWSERS)}); install Chromium, e.g. "
                      "`apt-get install chromium`")


def measure_tables(page: Path, width: int = 1280, browser: str | None = None) -> list[dict]:
    """[{table, holder, column, heading}] in CSS pixels for every table of `page` at `width`."""
    page = Path(page).resolve()
    if not page.exists():
        raise LayoutError(f"page={page} does not exist: build the book first (make book)")
    browser = browser or find_browser()
    with tempfile.TemporaryDirectory() as tmp:
        copy = page.parent / f".layout-{Path(tmp).name}.html"   # beside the page: its CSS and links resolve
        copy.write_text(page.read_text().replace("</body>", _MEASURE + "</body>"))
        try:
            done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp}",
                                   f"--window-size={width},2000", "--virtual-time-budget=5000", "--dump-dom",
                                   copy.as_uri()], capture_output=True, text=True, timeout=120)
        finally:
            copy.unlink(missing_ok=True)
    found = re.search(r'<pre id="layout-measure">(.*?)</pre>', done.stdout, re.S)
    if not found:
        raise LayoutError(f"the browser returned no measurement (exit {done.returncode}): {done.stderr[-500:]}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def overflowing(rows: list[dict]) -> list[dict]:
    """The tables wider than what holds them (a pixel of rounding allowed)."""
    return [r for r in rows if r["table"] > r["holder"] + 1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m grokcircuits.layout")
    ap.add_argument("page")
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args(argv)
    try:
        rows = measure_tables(Path(args.page), args.width)
    except LayoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in rows:
        print(f"table {r['table']:>5} px in {r['holder']:>5} px (column {r['column']} px)  {r['heading'].strip()[:60]}")
    bad = overflowing(rows)
    print(f"{len(rows)} table(s) at {args.width} px: " + ("all fit" if not bad else f"{len(bad)} wider than their column"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

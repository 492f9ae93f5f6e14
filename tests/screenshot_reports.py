"""Screenshots of a run folder's HTML pages as a reader sees them (headless Chromium).

Not a test (pytest does not collect it): a tool for looking at the reports before a change
lands, e.g. after ``make reports``::

    python tests/screenshot_reports.py reports/default --out /tmp/shots [--width 1280]

Each ``*.html`` page of the folder (and ``reports/index.html`` when the folder is under
``reports/``) becomes ``<out>/<page>.png``, the whole page at the given width and up to
``--height`` pixels. Needs Debian's Chromium (``apt-get install chromium``); the flags are
those that keep it off the network.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def screenshot(page: Path, png: Path, width: int, height: int, chromium: str) -> None:
    """Write ``png``: ``page`` rendered by headless Chromium at ``width`` x ``height``."""
    with tempfile.TemporaryDirectory(prefix="esi-chromium-") as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        f"--window-size={width},{height}", f"--screenshot={png}",
                        page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a run folder (esi run --out) or reports/")
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("screenshot_reports: chromium not found (apt-get install chromium)",
              file=sys.stderr)
        return 2
    pages = sorted(args.folder.glob("*.html"))
    top = args.folder.resolve().parent / "index.html"
    if args.folder.resolve().parent.name == "reports" and top.exists():
        pages.append(top)
    if not pages:
        print(f"screenshot_reports: no HTML page in {args.folder}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for page in pages:
        name = "reports_index" if page == top else page.stem
        png = args.out / f"{name}.png"
        screenshot(page, png, args.width, args.height, chromium)
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())

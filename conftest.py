"""pytest configuration for the nbval replay of ``reports/reference/*.ipynb``.

- Only ``text/plain`` and stream output is compared: pandas' HTML repr and images change
  between versions (see TOOLING.md), so ``text/html`` and images are skipped.
- The replayed notebooks hand their results over in a temporary run folder (``ESI_RUN_DIR``),
  never in the committed reference folder.
"""

from __future__ import annotations

import os
import tempfile

_SKIP = ("text/html", "image/png", "image/svg+xml", "application/javascript",
         "application/vnd.jupyter.widget-view+json")


def pytest_configure(config):
    if not os.environ.get("ESI_RUN_DIR"):
        os.environ["ESI_RUN_DIR"] = tempfile.mkdtemp(prefix="esi-nbval-")
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="esi-mpl-"))
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += _SKIP

"""Draw docs/ui-release.png: the release page of a simulated canary rolled back automatically.

    python docs/gen_ui_screenshot.py [OUT.png]

Builds the demo store (`modelreg.ui.demo.run_release_demo`) in a temporary directory,
serves it with the real `mreg ui`, and takes a screenshot of the release page with
Debian's chromium through Playwright (the same set-up as tests/ui).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from modelreg.ui.demo import run_release_demo

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="mreg-shot-") as tmp:
        demo = run_release_demo(Path(tmp) / "work")
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelreg", "ui", "--port", "0", "--store", str(demo.store.root)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "HOME": tmp},
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split("at ", 1)[1].strip()
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1500})
                page.goto(f"{url}models/{demo.model}/-/release")
                page.screenshot(path=str(out))
                browser.close()
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "ui-release.png")

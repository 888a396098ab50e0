"""`mreg report`: the web view's pages as one self-contained HTML file, and PNG charts.

The file has no external reference at all (inline CSS, inline SVG, no script), so it can
be attached to a CI run or a pull-request comment and opened anywhere offline. Links
point inside the file where their target is included, and are plain text otherwise.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelreg.errors import InvalidInput
from modelreg.ui import pages
from modelreg.ui.render import StaticLinks, render
from modelreg.ui.views import View

__all__ = ["Report", "ReportResult", "html_report", "png_charts", "stack_svgs", "write_report"]


@dataclass(frozen=True)
class Report:
    """What a report holds."""

    html: str
    model: str
    version: str | None
    release: bool


def html_report(view: View, spec: str, *, release: bool = False, generated: str = "") -> Report:
    """The report of `NAME[@REF]`, or with `release` the model's release page.

    A version's report holds the model page (versions, alias history), the identity card,
    the diff against the previous version and the model's audit entries.
    """
    mv = pages.resolve(view, spec)
    name = mv.name
    if release:
        rel = pages.release_page(view, name, time.time())
        if rel["rollout"] is None:
            raise InvalidInput(f"{name} has no release to report (drop --release)")
        links = StaticLinks(set(), release=True, model=False)
        html, _ = render(
            "page.html", links, title=f"{name} release", rel=rel, source=view.label,
            generated=generated,
        )  # fmt: skip
        return Report(html, name, None, True)
    ctx: dict[str, object] = {
        "model": pages.model_page(view, name),
        "card": pages.version_page(view, name, mv.version),
        "audit": pages.audit_page(view, name),
    }
    versions = {(name, mv.version)}
    earlier = [v for v in view.version_names(name) if v != mv.version]
    before = [v for v in earlier if _lt(v, mv.version)]
    if before:
        ctx["diff"] = pages.diff_page(view, f"{name}@{before[-1]}", f"{name}@{mv.version}")
    links = StaticLinks(versions, release=False, model=True)
    html, _ = render(
        "page.html", links, title=f"{name}@{mv.version}", source=view.label,
        generated=generated, **ctx,
    )  # fmt: skip
    return Report(html, name, mv.version, False)


def _lt(a: str, b: str) -> bool:
    from modelreg.names import Version

    return Version(a) < Version(b)


def stack_svgs(svgs: list[str], columns: int = 2, gap: int = 10) -> str:
    """Several SVG charts laid out on a grid, as one SVG document."""
    sizes = []
    for s in svgs:
        m = re.search(r'width="(\d+)" height="(\d+)"', s)
        sizes.append((int(m.group(1)), int(m.group(2))) if m else (640, 220))
    cell_w = max((w for w, _ in sizes), default=640)
    rows: list[list[int]] = [
        list(range(i, min(i + columns, len(svgs)))) for i in range(0, len(svgs), columns)
    ]
    parts, y = [], gap
    for row in rows:
        h = max(sizes[i][1] for i in row)
        for col, i in enumerate(row):
            x = gap + col * (cell_w + gap)
            parts.append(svgs[i].replace("<svg ", f'<svg x="{x}" y="{y}" ', 1))
        y += h + gap
    width = gap + columns * (cell_w + gap)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" '
        f'viewBox="0 0 {width} {y}"><rect width="{width}" height="{y}" fill="#f6f7f9"/>'
        + "".join(parts)
        + "</svg>"
    )


def png_charts(view: View, name: str) -> bytes:
    """The release page's charts as one PNG image (needs cairosvg and the cairo library)."""
    rel = pages.release_page(view, name, time.time())
    if rel["rollout"] is None:
        raise InvalidInput(f"{name} has no release: there are no release charts to draw")
    charts = rel["charts"]
    svg = stack_svgs([charts.weight.svg] + [c.svg for c in (*charts.metrics, *charts.checks)])
    try:
        import cairosvg
    except (ImportError, OSError) as exc:  # OSError: the cairo C library is missing
        raise InvalidInput(
            f"--png needs cairosvg and the cairo library: pip install 'modelreg[ui]' "
            f"(and libcairo2 from your system's packages): {exc}"
        ) from None
    png: bytes = cairosvg.svg2png(bytestring=svg.encode())
    return png


@dataclass(frozen=True)
class ReportResult:
    """What `mreg report` wrote."""

    model: str
    version: str | None
    release: bool
    html: Path | None = None
    html_bytes: int = 0
    png: Path | None = None
    png_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of `mreg report`."""
        return {
            "model": self.model,
            "version": self.version,
            "release": self.release,
            "html": str(self.html) if self.html else None,
            "html_bytes": self.html_bytes,
            "png": str(self.png) if self.png else None,
            "png_bytes": self.png_bytes,
        }


def write_report(
    view: View,
    spec: str,
    *,
    html: Path | None = None,
    png: Path | None = None,
    release: bool = False,
    generated: str = "",
) -> ReportResult:
    """Write the HTML report and/or the release charts' PNG (each atomically).

    Raises:
        InvalidInput: nothing to write, or `--release`/`--png` for a model with no release.
        NotFound: no such model, version or alias.
    """
    from modelreg.fsutil import atomic_write

    if html is None and png is None:
        raise InvalidInput("nothing to write: give --html FILE and/or --png FILE")
    mv = pages.resolve(view, spec)
    out: dict[str, Any] = {}
    report = None
    if html is not None:
        report = html_report(view, spec, release=release, generated=generated)
        data = report.html.encode()
        atomic_write(html, data)
        out.update(html=html, html_bytes=len(data))
    if png is not None:
        image = png_charts(view, mv.name)
        atomic_write(png, image)
        out.update(png=png, png_bytes=len(image))
    version = None if release else mv.version
    return ReportResult(mv.name, version, release, **out)

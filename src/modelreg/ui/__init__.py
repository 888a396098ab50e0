"""A read-only web view of a store or a remote: `mreg ui` and `mreg report --html` (issue 9).

- `views`: `LocalView` (a `Store`) and `RemoteView` (a `Remote`): what the pages read.
- `pages`: each page's data; `release`: the release page's numbers and charts.
- `charts`: server-side SVG; `render`: Jinja2 templates and links.
- `app`: the Starlette app and `serve()`; `report`: one self-contained HTML file, PNG charts.
- `hosts`: which Host and Origin headers the server answers (DNS rebinding).
- `demo`: a simulated canary with an automatic rollback, in simulated time (tests, bench,
  the screenshot in docs/).

Needs the `ui` extra (`pip install 'modelreg[ui]'`): starlette, uvicorn and jinja2, and
cairosvg for `--png`. Importing this package imports none of them.
"""

from __future__ import annotations

__all__ = ["MISSING_EXTRA", "require_extra"]

MISSING_EXTRA = "the web view needs the ui extra: pip install 'modelreg[ui]'"


def require_extra(*modules: str) -> None:
    """Raise InvalidInput naming the extra if one of `modules` cannot be imported."""
    import importlib

    from modelreg.errors import InvalidInput

    for m in modules or ("starlette", "uvicorn", "jinja2"):
        try:
            importlib.import_module(m)
        except ImportError:
            raise InvalidInput(f"{MISSING_EXTRA} ({m} is not installed)") from None

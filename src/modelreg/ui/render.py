"""Templates (Jinja2, autoescaped) and links, for the server and the one-file report.

Every value a user wrote (names, params, messages, reasons, rule values) reaches the
page through Jinja2's autoescaping; the only markup inserted unescaped is the SVG of
`charts.py`, which escapes its own texts. Pages carry a Content-Security-Policy whose
script nonce is new for every page, so even a value that escaped escaping could not run.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["Links", "ServerLinks", "StaticLinks", "compile_templates", "csp", "render"]


class Links:
    """Where a page links to; '' means "not available here" (shown as plain text)."""

    static = False

    def home(self) -> str:
        """The model list."""
        return ""

    def model(self, name: str) -> str:
        """A model's page."""
        return ""

    def version(self, name: str, version: str) -> str:
        """A version's identity card."""
        return ""

    def model_versions(self, name: str, offset: int, limit: int) -> str:
        """A page of a model's versions: `limit` of them after the `offset` newest."""
        return ""

    def file(self, name: str, version: str, path: str) -> str:
        """A file of a version."""
        return ""

    def at(self, name: str, ref: str) -> str:
        """Whatever version `NAME@REF` names when followed (an alias moves)."""
        return ""

    def release(self, name: str) -> str:
        """A model's release page."""
        return ""

    def drift(self, name: str, version: str, **query: str) -> str:
        """A version's drift page (`query`: its window, `since`/`until` or `window`)."""
        return ""

    def lineage(self, name: str) -> str:
        """A model's production-data lineage page."""
        return ""

    def audit(self, model: str | None = None) -> str:
        """The audit log."""
        return ""

    def diff(self, a: str, b: str) -> str:
        """Two versions side by side."""
        return ""


def _q(text: str) -> str:
    return quote(text, safe="/")


class ServerLinks(Links):
    """Links of the web server (see docs/ui.md for the URL scheme)."""

    def home(self) -> str:
        """The model list."""
        return "/"

    def model(self, name: str) -> str:
        """A model's page."""
        return f"/models/{_q(name)}"

    def version(self, name: str, version: str) -> str:
        """A version's identity card."""
        return f"/models/{_q(name)}/-/versions/{_q(version)}"

    def model_versions(self, name: str, offset: int, limit: int) -> str:
        """`?page=N` (1: the newest) when `offset` starts a page, else `?offset=N`."""
        from modelreg.ui.pages import PAGE_SIZE

        query: dict[str, int] = (
            {"page": offset // limit + 1} if offset % limit == 0 else {"offset": offset}
        )
        if limit != PAGE_SIZE:
            query["limit"] = limit
        return f"{self.model(name)}?{urlencode(query)}"

    def file(self, name: str, version: str, path: str) -> str:
        """A file of a version (served as a download)."""
        return f"/models/{_q(name)}/-/versions/{_q(version)}/files/{_q(path)}"

    def at(self, name: str, ref: str) -> str:
        """`NAME@REF` (an alias, a version, latest): redirects to the version it names now."""
        return f"/models/{_q(name)}/-/at/{_q(ref)}"

    def release(self, name: str) -> str:
        """A model's release page."""
        return f"/models/{_q(name)}/-/release"

    def drift(self, name: str, version: str, **query: str) -> str:
        """A version's drift page, with its window in the query (empty values left out)."""
        q = urlencode({k: v for k, v in query.items() if v})
        return f"{self.version(name, version)}/drift" + (f"?{q}" if q else "")

    def lineage(self, name: str) -> str:
        """A model's production-data lineage page."""
        return f"/models/{_q(name)}/-/lineage"

    def audit(self, model: str | None = None) -> str:
        """The audit log."""
        return "/audit" + (f"?{urlencode({'model': model})}" if model else "")

    def diff(self, a: str, b: str) -> str:
        """Two versions side by side."""
        return "/diff?" + urlencode({"a": a, "b": b})


class StaticLinks(Links):
    """Links inside a one-file report: anchors to the sections it holds."""

    static = True

    def __init__(self, versions: set[tuple[str, str]], release: bool, model: bool) -> None:
        self.versions = versions
        self.has_release = release
        self.has_model = model

    def model(self, name: str) -> str:
        """The model section, when included."""
        return "#model" if self.has_model else ""

    def version(self, name: str, version: str) -> str:
        """The card's section, when included."""
        return f"#v-{version}" if (name, version) in self.versions else ""

    def release(self, name: str) -> str:
        """The release section, when included."""
        return "#release" if self.has_release else ""


def csp(nonce: str) -> str:
    """The Content-Security-Policy of a page: nothing external, only our own inline script."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        f"script-src 'nonce-{nonce}'; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


@lru_cache(maxsize=1)
def _env() -> Any:
    import jinja2
    import markupsafe

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelreg.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["markup"] = markupsafe.Markup
    env.filters["bytes"] = _bytes
    from modelreg.release.bucketing import format_weight

    env.filters["weight"] = lambda w: str(format_weight(int(w)))
    env.filters["short"] = lambda d: (d or "")[:12]
    return env


def _bytes(n: int | None) -> str:
    from modelreg.cli._output import human_size

    return "-" if n is None else human_size(n, grouped=True)


def compile_templates() -> None:
    """Compile every template now (a server does it at start, not at its first request)."""
    env = _env()
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)


def render(template: str, links: Links, **ctx: Any) -> tuple[str, str]:
    """Render a page; return (html, nonce) so the server can send the matching CSP header."""
    nonce = secrets.token_urlsafe(16)
    html = _env().get_template(template).render(links=links, nonce=nonce, csp=csp(nonce), **ctx)
    return html, nonce

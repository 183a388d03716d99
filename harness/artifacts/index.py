"""A Python package index, read as pip reads it: the simple repository API (PEP 691 JSON, or the
PEP 503 HTML pages), at the index pip is configured with.

No index host is written here: ``index_url()`` is ``$PIP_INDEX_URL``, else ``index-url`` from pip's
configuration files (its ``download`` or ``global`` section), else pip's own built-in default.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import BinaryIO

from harness.errors import ProvisionError
from harness.provision import fetch

ACCEPT = ("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
          "text/html;q=0.01")
ENV_VAR = "PIP_INDEX_URL"
MAX_PAGE = 64 << 20  # a project page of thousands of files is a few MB


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute
    sha256: str | None  # what the index says, when it says it
    size: int | None = None
    requires_python: str | None = None
    yanked: bool = False


@dataclass(frozen=True)
class ProjectPage:
    project: str
    files: tuple[IndexFile, ...]
    versions: tuple[str, ...] = ()  # PEP 700 (API 1.1); otherwise read from the file names


class NoSuchProject(ProvisionError):
    pass


def index_url() -> str:
    """The simple index pip would use: ``$PIP_INDEX_URL``, pip's configuration, pip's default."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return env
    try:
        from pip._internal.configuration import Configuration
        from pip._internal.exceptions import ConfigurationError
        from pip._internal.models.index import PyPI
    except ImportError:
        raise ProvisionError(f"no package index: pip is not installed to say which; set {ENV_VAR}") from None
    config = Configuration(isolated=False)
    try:
        config.load()
    except ConfigurationError as err:
        raise ProvisionError(f"pip's configuration cannot be read: {' '.join(str(err).split())}") from None
    for key in ("download.index-url", "global.index-url", "download.index_url", "global.index_url"):
        try:
            value = str(config.get_value(key)).strip()
        except ConfigurationError:
            continue
        if value:
            return value
    return PyPI.simple_url


def page_url(index: str, project: str) -> str:
    from packaging.utils import canonicalize_name

    return f"{index.rstrip('/')}/{canonicalize_name(project)}/"


def project_page(project: str, index: str | None = None) -> ProjectPage:
    """The project's files as the index lists them. NoSuchProject on 404; a ProvisionError (one
    line, no host) when the index cannot be reached."""
    url = page_url(index or index_url(), project)
    what = f"the package index's page of {project}"

    def read(resp: BinaryIO) -> tuple[bytes, str, str]:
        data = resp.read(MAX_PAGE + 1)
        if len(data) > MAX_PAGE:
            raise ProvisionError(f"{what} is larger than {MAX_PAGE} bytes")
        headers = getattr(resp, "headers", None)
        kind = headers.get("Content-Type", "") if headers is not None else ""
        final = resp.geturl() if hasattr(resp, "geturl") else url
        return data, kind or "", final or url

    try:
        data, kind, final = fetch.retrying(url, what, read, headers={"Accept": ACCEPT})
    except fetch.NotFound:
        raise NoSuchProject(f"the package index has no project {project!r}") from None
    return parse_page(project, data, kind, final)


def parse_page(project: str, data: bytes, content_type: str, url: str) -> ProjectPage:
    text = data.decode("utf-8", "replace")
    if "json" in content_type or text.lstrip().startswith("{"):
        return parse_json(project, text, url)
    return parse_html(project, text, url)


def parse_json(project: str, text: str, url: str) -> ProjectPage:
    try:
        raw = json.loads(text)
        files = []
        for entry in raw["files"]:
            sha = entry.get("hashes", {}).get("sha256")
            size = entry.get("size")
            files.append(IndexFile(str(entry["filename"]), urllib.parse.urljoin(url, str(entry["url"])),
                                   str(sha).lower() if sha else None,
                                   size if isinstance(size, int) and not isinstance(size, bool) else None,
                                   entry.get("requires-python"), bool(entry.get("yanked", False))))
        versions = tuple(str(v) for v in raw.get("versions", ()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ProvisionError(f"the package index's page of {project} is not the simple API's JSON "
                             f"({type(err).__name__}: {err})") from None
    return ProjectPage(project, tuple(files), versions)


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None


def parse_html(project: str, text: str, url: str) -> ProjectPage:
    """PEP 503: one anchor per file, ``href`` with ``#sha256=...``, ``data-requires-python``, ``data-yanked``."""
    parser = _Anchors()
    parser.feed(text)
    files = []
    for attrs, label in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        absolute, _, fragment = urllib.parse.urljoin(url, href).partition("#")
        name = label or urllib.parse.unquote(absolute.rsplit("/", 1)[-1])
        algo, _, digest = fragment.partition("=")
        files.append(IndexFile(name, absolute, digest.lower() if algo == "sha256" and digest else None, None,
                               attrs.get("data-requires-python"), "data-yanked" in attrs))
    return ProjectPage(project, tuple(files))

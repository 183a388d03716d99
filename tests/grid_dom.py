"""Read an HTML grid page (as written, or as a browser rendered it: `chromium --dump-dom`): its cells,
their links, the details they open, and anything the page would fetch."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class GridCell:
    cell_id: str
    classes: set[str]
    data: dict[str, str]
    href: str = ""


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class GridDom(HTMLParser):
    cells: list[GridCell] = field(default_factory=list)
    sections: set[str] = field(default_factory=set)
    fetched: list[str] = field(default_factory=list)  # src= of any element, href= of a <link>
    texts: dict[str, str] = field(default_factory=dict)  # class -> the text of the first element with it
    _cell: GridCell | None = None
    _open: list[list[str]] = field(default_factory=list)  # per open element: the classes whose text it collects

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = set(a.get("class", "").split())
        if "src" in a or (tag == "link" and "href" in a):
            self.fetched.append(a.get("src") or a.get("href", ""))
        if tag == "td" and "cell" in classes and "data-cell" in a:
            self._cell = GridCell(a["data-cell"], classes, {k[5:]: v for k, v in a.items() if k.startswith("data-")})
            self.cells.append(self._cell)
        elif tag == "a" and self._cell is not None and not self._cell.href:
            self._cell.href = a.get("href", "")
        elif tag == "section" and "detail" in classes:
            self.sections.add(a.get("id", ""))
        if tag in VOID:
            return
        collects = [name for name in classes if name not in self.texts]
        for name in collects:
            self.texts[name] = ""
        self._open.append(collects)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        if tag not in VOID and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for collects in self._open:
            for name in collects:
                self.texts[name] += data


def read(html: str) -> GridDom:
    dom = GridDom()
    dom.feed(html)
    return dom

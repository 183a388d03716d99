"""nix-ld under test: real builds only, supplied by path or built here from upstream's source.

    request.parse(text)              one --nix-ld item
    provide.supply(items, dirs, ...) the command line's items, sources read (labels known)
    provide.provide(labels, ...)     per label: a store path, its origin, or why it is missing
    provide.source_tree(label, ...)  a label's verified source, or why there is none
    suite.fixtures(tree, root, ...)  nix-ld's own tests' C fixtures, compiled as upstream compiles them
    source.load(path, cache, ...)    a verified source tree (archive, tree, git repository or bundle)
    build.build(tree, cache, ...)    nix-ld built offline in the nix-ld build root, cached
    bisect                           the first commit where a cell's outcome changes
"""

from __future__ import annotations

from .labels import check_label, is_label, label_version
from .pins import PinnedSource
from .provide import NixLdSet, Supply, archives_from_env, provide, source_tree, specs_from_env, supply

__all__ = [
    "NixLdSet", "PinnedSource", "Supply", "archives_from_env", "check_label", "is_label", "label_version",
    "provide", "source_tree", "specs_from_env", "supply",
]

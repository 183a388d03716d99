"""Binaries from where people get them: PyPI wheels, Debian packages, URLs, local files.

    spec.py     the matrix syntax (wheel:, deb:, url: + sha256:, file:; path:, run:, expect:, built_in:)
    lock.py     the matrix's lock (<matrix>.lock.json): pinned on first use, verified ever after
    index.py    the configured Python package index (simple API, JSON or HTML)
    wheel.py    the Linux x86_64 wheel pip would choose
    deb.py      a package from the Debian mirror's signed indexes
    url.py      a download the matrix gives the sha256 of
    local.py    a local file
    unpack.py   the program inside the artifact, checked to be a dynamically linked x86_64 ELF program
    provide.py  all of it, as BuiltBinary entries of the checked cache

Import the module you need (the matrix loader only needs spec.py).
"""

from __future__ import annotations

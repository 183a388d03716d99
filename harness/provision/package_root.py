"""The root the ``container`` strategy runs a Debian package in: the suite's build root with the
package installed as apt installs it, its ``Depends`` with it (``mmdebstrap --include``, the pinned
version), cached by the package set like every build root. The program there is the root's own
file, checked against the pinned package's: apt must have installed exactly that (told the
versions its Depends pin exactly, as a library of its own source package, which a newer security
update would otherwise replace).
"""

from __future__ import annotations

from harness.cache import Cache
from harness.cache.entry import file_sha256
from harness.errors import ProvisionError
from harness.model import BuildRoot, BuiltBinary
from harness.progress import Progress

from .buildroot import build_root
from .suites import CONFIG

# An essential package (perl-base) is in the root before the --include list is installed, at the
# newest version the root's sources have (a security update): the pinned one is a downgrade.
ALLOW_DOWNGRADES = ('APT::Get::allow-downgrades "true"',)


def package_root(suite: str, program: BuiltBinary, cache: Cache, progress: Progress) -> BuildRoot:
    """``suite``'s root with ``program``'s package (``name=version``) installed by apt."""
    if not program.apt:
        raise ProvisionError(f"{program.reproducer}: not from a Debian package; it has no package root")
    progress.step(f"root of {suite} with {' '.join(program.apt)} installed by apt")
    try:
        root = build_root(suite, cache, progress, include=(*CONFIG.buildroot_include, *program.apt),
                          aptopts=ALLOW_DOWNGRADES)
    except ProvisionError as err:
        raise ProvisionError(f"apt could not install {program.apt[0]} in {suite} ({err}); when the archive has "
                             "moved on, ldmatrix lock MATRIX moves the pin") from None
    installed = root.path / program.member
    try:
        same = installed.is_file() and file_sha256(installed) == program.sha256
    except OSError:
        same = False
    if not same:
        raise ProvisionError(f"{root.path}: /{program.member} is not the file of {program.apt[0]} as pinned; "
                             "apt installed another version (ldmatrix lock MATRIX moves the pin)")
    return root

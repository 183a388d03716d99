"""The vocabulary of ldmatrix: closed sets as enums, everything else as frozen dataclasses.

Every other module speaks in these types; nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from harness.root.release import NixosRelease


class Strategy(enum.StrEnum):
    """A fix strategy: how a foreign binary is made to run on NixOS (or not)."""

    NONE = "none"
    PATCHELF = "patchelf"
    NIX_LD = "nix-ld"
    LD_LIBRARY_PATH = "LD_LIBRARY_PATH"
    CONTAINER = "container"


class Outcome(enum.StrEnum):
    """What a cell's run shows. ``ok`` means the reproducer's own check passed."""

    OK = "ok"
    MISSING_INTERPRETER = "missing-interpreter"
    MISSING_LIBRARY = "missing-library"
    GLIBC_TOO_OLD = "glibc-too-old"
    ENV_CORRUPTED = "env-corrupted"
    CRASH = "crash"
    TIMEOUT = "timeout"
    ERROR = "error"


class Launch(enum.StrEnum):
    """How the cell's program is started: each a real program doing what people do."""

    DIRECT = "direct"  # execve by absolute path (bubblewrap), the login environment in the profile's order
    ENV_I = "env-i"  # env -i K=V ... PROGRAM: an explicit list, in that order
    BASH_LOGIN = "bash-login"  # bash -lc '/home/user/bin/PROGRAM' after a NixOS /etc/profile
    BASH_PATH = "bash-path"  # the same, PROGRAM found through PATH
    DOT_SLASH = "dot-slash"  # the same, ./PROGRAM from its directory
    PYTHON = "python"  # subprocess.run([...], env={**os.environ, <nix-ld's variables>})

    @property
    def uses_bash(self) -> bool:
        return self in (Launch.BASH_LOGIN, Launch.BASH_PATH, Launch.DOT_SLASH)

    @property
    def naming(self) -> NameForm | None:
        """How the style itself names the program (bash-path: through PATH; dot-slash: ./NAME); None: as
        the cell's ``name`` says."""
        return {Launch.BASH_PATH: NameForm.PATH, Launch.DOT_SLASH: NameForm.DOT_SLASH}.get(self)


class NameForm(enum.StrEnum):
    """How the program is named when it is started (the ``name`` axis)."""

    ABSOLUTE = "absolute"  # /home/user/bin/NAME (or its place in an artifact's tree)
    PATH = "path"  # bare NAME, found through PATH (its directory put first on PATH)
    DOT_SLASH = "dot-slash"  # ./NAME, from its directory


class NameLength(enum.StrEnum):
    """The program's file name: its own, or (a reproducer's) a short or a long one."""

    REAL = "real"
    SHORT = "short"
    LONG = "long"


@dataclass(frozen=True)
class Naming:
    """A ``name`` axis value: ``dot-slash``, ``path-short``, ``absolute-long``."""

    form: NameForm = NameForm.ABSOLUTE
    length: NameLength = NameLength.REAL

    @property
    def value(self) -> str:
        return self.form.value if self.length is NameLength.REAL else f"{self.form.value}-{self.length.value}"

    @classmethod
    def parse(cls, text: str) -> Naming | None:
        return next((n for n in ALL_NAMINGS if n.value == text), None)


ALL_NAMINGS = tuple(Naming(form, length) for form in NameForm for length in NameLength)


class RootKind(enum.StrEnum):
    NIXOS = "nixos"  # /nix/store + /bin/sh, no /lib, /lib64, /usr/lib
    FHS = "fhs"  # a Debian root file system (the build root of a suite)


class Language(enum.StrEnum):
    C = "c"
    RUST = "rust"


@dataclass(frozen=True)
class StorePath:
    """One path in /nix/store, unpacked on the host at ``host_path``."""

    name: str  # "glibc", "libxcrypt", "gcc-lib", "busybox", "nix-ld"
    version: str  # the Debian version (or the nix-ld label); "" for a nixpkgs path whose name has none
    digest: str  # 32 chars of Nix base-32
    host_path: Path  # where it is on this machine: the cache, or a Nix store's directory

    @property
    def basename(self) -> str:
        return f"{self.digest}-{self.name}-{self.version}" if self.version else f"{self.digest}-{self.name}"

    @property
    def store_path(self) -> str:
        return f"/nix/store/{self.basename}"

    @property
    def lib_dir(self) -> str:
        return f"{self.store_path}/lib"


@dataclass(frozen=True)
class NixpkgsSource:
    """A nixpkgs pin whose own store paths a GlibcSet is (harness/nixpkgs/): what a NixOS VM of it boots."""

    name: str  # "nixos-24.11": the pins file's key, the cell's column
    url: str  # the archive of ``rev``
    sha256: str  # its NAR hash: a pin without one is refused (harness/nixpkgs/pins.py)
    rev: str
    nix_ld: str | None = None  # the store path of the pin's own nix-ld (pkgs.nix-ld), realised
    # What the pin's NixOS modules do around a foreign program (stub-ld, how programs.nix-ld.libraries
    # meets the base list), as `pins update` read them from its tree; None: not read (unknown).
    release: NixosRelease | None = None


@dataclass(frozen=True)
class GlibcSet:
    """The store paths that stand for one glibc build, as a NixOS system would have them.

    Two kinds, one shape: Debian's builds unpacked into store paths (``nixpkgs`` None), or a
    nixpkgs pin's own store paths realised with Nix (``nixpkgs`` names the pin; ``extra`` holds
    the rest of their closure and ``ldd``).
    """

    glibc_version: str  # "2.36"
    suite: str  # Debian suite it was taken from, "bookworm"; for a nixpkgs pin its name
    glibc: StorePath
    libxcrypt: StorePath
    gcc_lib: StorePath
    shell: StorePath  # busybox: /bin/sh of the bare root (the system layout links its bash over it)
    nixpkgs: NixpkgsSource | None = None
    # A pin's own programs.nix-ld default libraries (its baseLibraries, realised): what the pin's
    # cells get for ``libs: default``. None for Debian's builds (harness/provision/packages.py has theirs).
    nix_ld_libraries: tuple[StorePath, ...] | None = None
    extra: tuple[StorePath, ...] = ()  # more store paths the root holds (a pin's closure, ldd)
    bash: StorePath | None = None  # a pin's own bash for the bash launch styles; None: the system layout's
    own_nix_ld: StorePath | None = None  # a pin's own pkgs.nix-ld: it serves its version's cells on this build
    # Our own build of glibc (harness/provision/glibc_build.py): its bin output's files on the host
    # (ldd, made a store path of its own beside the system's bash), and what it was built with.
    programs: Path | None = None
    build: str = ""

    @property
    def loader(self) -> str:
        return f"{self.glibc.lib_dir}/ld-linux-x86-64.so.2"

    @property
    def store_paths(self) -> tuple[StorePath, ...]:
        own = (self.glibc, self.libxcrypt, self.gcc_lib, self.shell)
        return own + tuple(p for p in self.extra if p not in own)

    def own_nix_ld_for(self, label: str | None) -> StorePath | None:
        """The pin's own nix-ld when a cell on this build names its version: what NixOS users of the
        pin run (a build of the same version from its source serves the other columns)."""
        if self.own_nix_ld is not None and label == self.own_nix_ld.version:
            return self.own_nix_ld
        return None

    @property
    def key(self) -> str:
        """What cells name this build by (Cell.glibc_key): the pin, or Debian's glibc version."""
        return self.nixpkgs.name if self.nixpkgs else self.glibc_version


@dataclass(frozen=True)
class LibrarySet:
    """Libraries as Nix builds them: each listed attribute's own store paths (``own``: what nix-ld's
    directory links and a RUNPATH or LD_LIBRARY_PATH names), and what the store must also hold for
    their RUNPATHs to resolve (``closure``, ``own`` first)."""

    attributes: tuple[str, ...] = ()
    own: tuple[StorePath, ...] = ()
    closure: tuple[StorePath, ...] = ()


@dataclass(frozen=True)
class BuildRoot:
    """A Debian root file system with gcc and rustc, for one suite."""

    suite: str
    path: Path
    glibc_version: str
    digest: str  # content id of what it was built from (suite + package list + lock)


@dataclass(frozen=True)
class BuiltBinary:
    """A reproducer compiled inside a build root."""

    reproducer: str  # "hello", "spawn-env", ...
    suite: str
    path: Path  # on the host
    sha256: str
    build_log: Path
    interpreter: str  # PT_INTERP as built, "/lib64/ld-linux-x86-64.so.2"
    # A real program is installed whole (harness/artifacts/tree.py): its artifact's tree on the host,
    # the program's path in it as the matrix names it (``named``, maybe a link) and its file there
    # (``member``: ``path`` is that file); a Debian package's ``name=version`` as apt installs it, and
    # the exact versions its Depends name (``libjq1=1.6-2.1+deb12u2``: from the same source package).
    tree: Path | None = None
    named: str = ""
    member: str = ""
    apt: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputCheck:
    """What success looks like for a real program (not a reproducer, which prints its own
    ``LDMATRIX-CHECK``): its exit status, and a regular expression searched in stdout and stderr."""

    exit: int | None = 0  # None: any status a program that ran exits with (0 to 125)
    output: str | None = None  # a Python regular expression (re.search, multiline), None: any output
    also: tuple[str, ...] = ()  # more regular expressions the output must match, each somewhere

    def describe(self) -> str:
        status = "any exit status" if self.exit is None else f"exit {self.exit}"
        wanted = " and ".join(f"/{p}/" for p in self.patterns)
        return status + (f" and output matching {wanted}" if wanted else "")

    @property
    def patterns(self) -> tuple[str, ...]:
        return ((self.output,) if self.output is not None else ()) + self.also

    def accepts(self, rc: int) -> bool:
        """``rc`` is the status this check wants (any: a program's own, not a shell's 126/127 or a signal's)."""
        return 0 <= rc <= 125 if self.exit is None else rc == self.exit


@dataclass(frozen=True)
class InstalledBinary:
    """A binary as a cell runs it: at ``path`` inside the cell, bound read-only from ``host_path``.

    ``host_path`` is shared by every cell that runs the same bytes (see harness/cache/installed.py);
    results name it by path and digest instead of copying it.
    """

    path: str  # inside the cell, "/home/user/bin/c-hello"
    host_path: Path
    sha256: str  # of the file as installed (patched)
    built_sha256: str  # of the reproducer as built, before patchelf
    interpreter: str | None  # what patchelf set (None: left as built)
    runpath: tuple[str, ...]  # what patchelf set (empty: left as built)
    reproducer: str = ""  # which reproducer it is (a NixOS VM builds the Rust launchers with nixpkgs' rustc)


@dataclass(frozen=True)
class Link:
    """A symbolic link ``path`` -> ``target`` inside a root."""

    path: str
    target: str


@dataclass(frozen=True)
class Mount:
    """A host path made visible at ``target`` inside the root.

    ``tmpfs``: a cell's HOME. ``target`` is then a fresh tmpfs of the cell's own, bounded in size
    (harness.root.limits: ``home``) and owned by the cell user, holding ``host``'s directories and, bound
    read-only, its files (what the harness put there: a launcher's scripts); what the cell writes
    stays in the tmpfs and goes with it, never to the host.
    """

    host: Path
    target: str
    writable: bool = False
    tmpfs: bool = False


@dataclass(frozen=True)
class RootSpec:
    """The base root a cell runs in. Runners turn this into a bwrap tree or a docker image."""

    kind: RootKind
    digest: str
    fhs_root: Path | None = None  # FHS: the whole root file system
    store_paths: tuple[StorePath, ...] = ()  # NIXOS: what /nix/store holds
    links: tuple[Link, ...] = ()  # NIXOS: e.g. /bin/sh -> busybox


@dataclass(frozen=True)
class Cell:
    """One combination of the matrix axes."""

    binary: str  # the matrix's name for the binary, "c-hello"
    strategy: tuple[Strategy, ...]  # composed left to right, e.g. (PATCHELF, LD_LIBRARY_PATH)
    glibc: str  # "2.36"
    nix_ld: str | None = None  # nix-ld version label, only for nix-ld cells
    env: str = "nixos-login"  # login environment profile
    launch: Launch = Launch.DIRECT  # how the program is started
    libs: str = "none"  # the library set NixOS offers it (harness/data/libraries.json): none, default, a+b
    # The nixpkgs pin whose own glibc build this is ("nixos-24.11"); None: Debian's build of ``glibc``.
    # ``glibc`` is then that pin's glibc version, what rules like ``glibc: "<2.38"`` compare.
    nixpkgs: str | None = None
    # The NixOS release whose behaviour the root has (harness/root/release.py), when the matrix's ``nixos``
    # axis names more than one; None: the matrix's one release (or a pin's own), not part of the id.
    nixos: str | None = None
    # How the started program is named (a Naming's value: ``dot-slash``, ``path-short``); None: as its
    # launch style names it (bash-path through PATH, dot-slash as ./NAME, the others by absolute path)
    # with its own file name, not part of the id.
    name: str | None = None

    @property
    def naming(self) -> Naming:
        return Naming.parse(self.name or self.implied_name) or Naming()

    @property
    def strategy_name(self) -> str:
        return "+".join(s.value for s in self.strategy)

    @property
    def glibc_key(self) -> str:
        """The glibc build the cell runs on (GlibcSet.key): the pin's name, or Debian's version."""
        return self.nixpkgs or self.glibc

    @property
    def glibc_label(self) -> str:
        """``glibc 2.36``, or ``nixos-24.11 · glibc 2.40``: a grid column."""
        return f"{self.nixpkgs} · glibc {self.glibc}" if self.nixpkgs else f"glibc {self.glibc}"

    @property
    def axes(self) -> dict[str, str]:
        out = {"binary": self.binary, "strategy": self.strategy_name, "glibc": self.glibc, "env": self.env,
               "launch": self.launch.value, "libs": self.libs}
        if self.nix_ld is not None:
            out["nix_ld"] = self.nix_ld
        if self.nixpkgs is not None:
            out["nixpkgs"] = self.nixpkgs
        if self.nixos is not None:
            out["nixos"] = self.nixos
        if self.name is not None:
            out["name"] = self.name
        return out

    @property
    def implied_name(self) -> str:
        """The ``name`` a cell of this launch style has unless it says otherwise."""
        return (self.launch.naming or NameForm.ABSOLUTE).value

    @property
    def build(self) -> str:
        """The glibc build as the id names it: ``glibc-2.36`` (Debian's) or the pin, ``nixos-24.11``."""
        return self.nixpkgs or f"glibc-{self.glibc}"

    @property
    def id(self) -> str:
        """``c-hello.patchelf.glibc-2.36``; on a pin's glibc ``c-hello.patchelf.nixos-24.11``, which
        stays the same cell when the pin moves to another glibc (the guard compares it)."""
        return ".".join(self._id_parts(with_build=True))

    @property
    def key(self) -> str:
        """The id without the glibc build, ``c-hello.patchelf``: the same cell on every build (``ldmatrix
        parity`` matches cells by it)."""
        return ".".join(self._id_parts(with_build=False))

    def _id_parts(self, with_build: bool) -> list[str]:
        parts = [self.binary, self.strategy_name]
        if self.nix_ld is not None:
            parts[-1] = f"{self.strategy_name}-{self.nix_ld}"
        if with_build:
            parts.append(self.build)
        if self.nixos is not None:
            parts.append(f"nixos-{self.nixos}")
        if self.env != "nixos-login":
            parts.append(self.env)
        if self.launch is not Launch.DIRECT:
            parts.append(self.launch.value)
        if self.libs != "none":
            parts.append(f"libs-{self.libs}")
        if self.name is not None:
            parts.append(f"name-{self.name}")
        return parts


@dataclass(frozen=True)
class Expectation:
    outcome: Outcome
    source: str  # "matrices/seed.yaml:42" — the rule that decided it
    bug: str | None = None  # URL of a known upstream bug: xfail(strict=True) until it is fixed
    fixed_outcome: Outcome = Outcome.OK  # what the cell gives once the bug is fixed


@dataclass(frozen=True)
class PreparedCell:
    """Everything a runner needs to run one cell; runners add nothing of their own."""

    cell: Cell
    root: RootSpec
    mounts: tuple[Mount, ...]
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # ordered: order matters for nix-ld 1.x
    cwd: str
    timeout: float
    workdir: Path  # host dir of this cell's files while it runs: the command, its output
    binaries: tuple[InstalledBinary, ...] = ()  # what the cell runs, by path and digest
    predicted: Outcome | None = None  # what the loader will do, from the ELF files (harness/loader/predict.py)
    prediction: str = ""  # why, in one line
    nix_ld: StorePath | None = None  # the nix-ld under test (a NixOS VM's programs.nix-ld.package)
    nixpkgs: NixpkgsSource | None = None  # the pin whose store paths the cell runs on (a VM boots it)
    # programs.nix-ld.libraries as nixpkgs attributes (a VM sets it); None: NixOS's own default
    nix_ld_libraries: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CommandResult:
    """What one run of a command gave: the contract every runner keeps."""

    rc: int  # negative: killed by that signal
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    stdout_cut: int = 0  # bytes of stdout not kept (harness.runners.output: a marker line shows where)
    stderr_cut: int = 0
    interrupted: bool = False  # stopped by Ctrl-C before it ended (harness/interrupt.py): no outcome

    @property
    def truncated(self) -> bool:
        return bool(self.stdout_cut or self.stderr_cut)


@dataclass(frozen=True)
class NotRun:
    """A cell that was not run: why, and whether that is a harness error. The one shape of it, from
    preparing (no store paths for its glibc, no nix-ld of its version: skips) and from runners.

    ``error``: the cell should have run and could not (recorded as ``error`` with the reason);
    otherwise the cell cannot be run here at all (recorded as skipped with the reason, which
    says what to supply).
    """

    reason: str
    error: bool = True

    @classmethod
    def skip(cls, reason: str) -> NotRun:
        return cls(reason, error=False)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    evidence: str  # the line that proves it


@dataclass(frozen=True)
class CellResult:
    cell_id: str
    outcome: Outcome | None  # None when skipped
    evidence: str
    expected: Outcome | None
    bug: str | None
    skip_reason: str | None
    rc: int | None
    duration: float
    runner: str
    argv: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    stdout: str = ""
    stderr: str = ""
    axes: dict[str, str] = field(default_factory=dict)  # binary, strategy, glibc, nix_ld, env
    fixed_outcome: Outcome | None = None  # with a known bug: what the cell gives once it is fixed
    extra: dict[str, str] = field(default_factory=dict)
    output_cut: int = 0  # bytes of stdout and stderr not kept (the output was longer than the bound)
    predicted: Outcome | None = None  # the loader's outcome worked out from the ELF files
    prediction: str = ""  # why

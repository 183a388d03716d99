"""What the dynamic loader will do with a program, read from its ELF files before anything runs.

- ``elf``: ``read(path)`` -> interpreter, RUNPATH, NEEDED, soname;
- ``patchelf``: ``patch`` (a copy with another interpreter and RUNPATH);
- ``predict``: ``simulate`` the loader's search in a cell's root, ``agrees`` with what happened;
- ``inspect``: ``answer``: the smallest ``programs.nix-ld.libraries`` for a program (``ldmatrix inspect``).
"""

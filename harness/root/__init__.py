"""The NixOS-like root a cell runs in, and how a cell is started and bounded in it.

- ``release``: NixOS releases as facts (stub-ld, ``programs.nix-ld`` defaults), no I/O;
- ``system``: ``layout`` of the system's /etc, /run/current-system/sw and /usr/bin/env;
- ``environments``: the login environment (``login_environment``, ``HOME``);
- ``launch``: the launch styles (``launch``: a shell, Python, a Nix-built parent starting the program);
- ``bwrap``: the one bubblewrap command line; ``limits``: memory, pids, output, the cell user;
- ``cell_home``, ``cell_user``, ``store_farm``, ``processes``: a cell's HOME, its first process,
  its /nix/store as one bind, and whether the process that made something is still there.

Nothing is imported here: harness/model.py reads ``root.release`` and must not pull the rest in.
"""

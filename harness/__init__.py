"""ldmatrix: does a binary built outside Nix run on NixOS — with which fix, on which glibc?"""

__version__ = "0.1.0"

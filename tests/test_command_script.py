"""command.sh: a fresh HOME with the cell's own files; the mount points bubblewrap makes itself are
left to it (each a process less when the script runs)."""

from __future__ import annotations

from pathlib import Path

from harness.results.command_script import script


def test_mount_points_the_command_makes_are_not_made_twice(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "c-hello").touch()  # a mount point: bubblewrap binds the binary over it
    (home / ".ldmatrix").mkdir()
    (home / ".ldmatrix" / "record.sh").write_text("echo hi\n")
    (home / "empty-dir").mkdir()
    argv = ["bwrap", "--bind", str(home), "/home/user", "--", "/home/user/bin/c-hello"]
    made = script(argv, fresh=[home], made=[frozenset({"bin/c-hello"})])
    assert "touch" not in made and '"$home"/bin' not in made
    assert 'mkdir -p "$home"/.ldmatrix' in made and 'base64 -d > "$home"/.ldmatrix/record.sh' in made
    assert 'mkdir -p "$home"/empty-dir' in made  # a directory of the cell's own, empty or not, stays
    assert '--bind "$home" /home/user' in made
    every = script(argv, fresh=[home])
    assert 'touch "$home"/bin/c-hello' in every and 'mkdir -p "$home"/bin' in every

"""What a run leaves and how it is read: its directory, its results file, grids and comparisons.

- ``outdir``: ``RunDirectory`` (one run at a time holds ``<out>/<matrix>/``), ``cells/<id>/`` folders;
- ``file``: ``read`` a ``results.jsonl`` (damaged lines named, never fatal);
- ``command_script``: each cell's ``command.sh``, which runs it again as it ran;
- ``report`` and ``html_grid``: the grid as text, Markdown and a standalone HTML page;
- ``guard`` (``compare`` two runs), ``baseline`` (per glibc build), ``parity`` (runners and builds),
  ``merge`` (the shards of one run put back together).
"""

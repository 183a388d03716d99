"""Docker: the engine, the roots' images, our containers and reproducers compiled in a container.

- ``engine``: ``client()``, ``unavailable()``, the labels every object of ours carries;
- ``images``: ``ensure_image(root)`` (a root imported as a content-tagged image), ``prune``, ``refresh_pins``;
- ``containers``: ``ContainerSpec`` rendered once for the SDK (``create_container``, ``run_container``)
  and for ``docker run`` (``docker_cli_argv``), and ``prune_containers`` for those of killed runs;
- ``build``: ``build_in_container``, the reproducers' compiler of ``--runner docker``.

The runner itself is harness/runners/docker.py (``DockerRunner``), beside the other runners.
"""

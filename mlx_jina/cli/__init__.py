"""`mlx-jina` command line. Each area registers its commands from its own module (imported below);
heavy imports (mlx, the model) happen inside the commands, so `--help` is instant."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlx-jina")
def main() -> None:
    """On-device jina-embeddings-v5-text-small embeddings and offline search over your notes."""


from mlx_jina.cli import embed  # noqa: E402,F401  (registers commands)
from mlx_jina.cli import kb  # noqa: E402,F401  (registers commands)
from mlx_jina.cli import bench  # noqa: E402,F401
from mlx_jina.cli import serve  # noqa: E402,F401

"""`mlx-jina` command line. Each area registers its commands from its own module (imported below);
heavy imports (mlx, the model) happen inside the commands, so `--help` is instant."""

from __future__ import annotations

from typing import Any

import click

from mlx_jina.errors import MlxJinaError


class Group(click.Group):
    """The one CLI error handler: every mlx-jina error a command lets through becomes click's
    one-line `Error: ...` (exit 1) instead of a traceback; usage errors keep click's exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlxJinaError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mlx-jina")
def main() -> None:
    """On-device jina-embeddings-v5-text-small embeddings and offline search over your notes."""


from mlx_jina.cli import bench, embed, kb, mcp, rerank, serve  # noqa: E402,F401  (each module registers its commands)

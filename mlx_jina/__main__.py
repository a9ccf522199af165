"""`python -m mlx_jina ...` is the `mlx-jina` command."""

from mlx_jina.cli import main

main(prog_name="mlx-jina")

"""`mlx-jina bench`: encoder speed on the configurations users compare, optionally side by side
with the PyTorch reference path. Never imported by the library itself."""

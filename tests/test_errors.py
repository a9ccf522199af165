"""One home for errors: every exception class mlx-jina defines lives in mlx_jina.errors and is
exported from `mlx_jina` (the server's ApiError is the HTTP mapping, not an error callers catch)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import mlx_jina
from mlx_jina import errors

PROTOCOL_ONLY = {"mlx_jina.server.errors.ApiError"}


def test_every_exception_is_defined_in_errors_and_exported():
    defined = []
    for module_info in pkgutil.walk_packages(mlx_jina.__path__, "mlx_jina."):
        if module_info.name == "mlx_jina.__main__":
            continue
        module = importlib.import_module(module_info.name)
        defined += [f"{module.__name__}.{name}" for name, obj in vars(module).items()
                    if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__]
    assert "mlx_jina.errors.MlxJinaError" in defined  # the walk saw the package
    assert {d for d in defined if not d.startswith("mlx_jina.errors.")} == PROTOCOL_ONLY
    own = {name for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, Exception)}
    assert own <= set(mlx_jina.__all__)
    assert all(issubclass(getattr(errors, name), errors.MlxJinaError) for name in own)
    assert all(getattr(mlx_jina, name) is getattr(errors, name) for name in own)

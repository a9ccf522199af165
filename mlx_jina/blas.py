"""Fast float32 BLAS for MLX's Linux CPU backend.

The mlx-cpu wheel bundles reference (netlib) BLAS: ~2 GFLOP/s on a float32 matmul. MLX resolves
`cblas_sgemm` through the dynamic linker, so loading an optimised BLAS with RTLD_GLOBAL *before*
`mlx.core` is imported makes MLX use it (measured here: 225 GFLOP/s with cmeel-openblas 0.3.31).
macOS (Accelerate + Metal) is left untouched.

Choice, in order: $MLX_JINA_BLAS (a library path, or "off"), the `cmeel-openblas` wheel (a
dependency on Linux; needs the system's libgfortran.so.5), then a system OpenBLAS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
import sysconfig
from pathlib import Path

#: What was loaded (a path), or why nothing was; read by `mlx-jina doctor`.
status: str = "not attempted"

_SYSTEM_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3",
    "/usr/lib64/libopenblas.so.0",
)


def _candidates() -> list[str]:
    found = []
    for site in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *sys.path}:
        found += sorted(glob.glob(os.path.join(site, "cmeel.prefix", "lib", "libopenblas.so*")))
    system = ctypes.util.find_library("openblas")
    return found + ([system] if system else []) + [p for p in _SYSTEM_CANDIDATES if Path(p).exists()]


def preload() -> str:
    """Load a fast BLAS globally if we are on Linux and mlx.core is not imported yet."""
    global status
    if status != "not attempted":
        return status
    choice = os.environ.get("MLX_JINA_BLAS", "")
    if not sys.platform.startswith("linux"):
        status = "platform BLAS (not Linux)"
    elif choice.lower() == "off":
        status = "disabled by MLX_JINA_BLAS=off (MLX's bundled reference BLAS)"
    elif "mlx.core" in sys.modules:
        status = "too late: mlx.core was imported before mlx_jina (reference BLAS in use)"
    else:
        errors = []
        for path in [choice] if choice else _candidates():
            try:
                ctypes.CDLL(path, mode=os.RTLD_GLOBAL)
                status = path
                break
            except OSError as exc:
                errors.append(f"{path}: {exc}")
        else:
            status = "none found, MLX runs on its slow reference BLAS. " + (
                "; ".join(errors) if errors else "Install cmeel-openblas (and libgfortran5) or libopenblas0-pthread."
            )
    return status

"""The ONNX peer: the merged one-adapter torch model exported with `torch.onnx.export` (input ids
+ attention mask -> last hidden state, what the vendor's `onnx/model.onnx` files take) and run by
onnxruntime's CPU provider; pooling (last real token) happens in numpy, as in ONNX-based packages.
The export goes to a temporary folder that lives as long as the runner.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mlx_jina.bench.peers import PeerRun, padded_batches
from mlx_jina.bench.workloads import Workload

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "last_hidden_state"
OPSET = 17


def onnx_runner(merged: Any, hidden_size: int) -> PeerRun:
    """Export `merged` (a torch Qwen3Model) once, and return a callable embedding any single-adapter
    workload with onnxruntime."""
    import onnxruntime  # here, not at the top: the package imports without the reference extra

    folder = tempfile.TemporaryDirectory(prefix="mlx-jina-bench-onnx-")
    path = export(merged, Path(folder.name))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(workload: Workload) -> np.ndarray:
        _ = folder  # the external weight files stay on disk while the session may read them
        out = np.empty((len(workload.ids), hidden_size), dtype=np.float32)
        for batch, ids, mask, lengths in padded_batches(workload, range(len(workload.ids))):
            hidden = session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})[0]
            out[batch] = hidden[np.arange(len(batch)), lengths - 1]
        return out

    return run


def export(merged: Any, folder: Path) -> Path:
    """`merged` as folder/model.onnx (weights as external data: the graph is over protobuf's 2 GB),
    with dynamic batch and sequence axes. The TorchScript exporter (dynamo=False) needs no
    onnxscript; the causal + padding mask is built inside the graph from plain tensor ops, since
    transformers' own mask builder (vmap) does not trace."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            pos = torch.arange(input_ids.shape[1])
            mask = (pos[None, :] <= pos[:, None])[None, None] & attention_mask.bool()[:, None, None, :]
            return self.model(input_ids=input_ids, attention_mask={"full_attention": mask},
                              use_cache=False).last_hidden_state

    print("onnxruntime: exporting the merged model to ONNX (one to two minutes at the real size)", file=sys.stderr)
    sample = torch.ones((2, 3), dtype=torch.long)
    axes = {"batch": 0, "tokens": 1}
    dynamic = {name: {i: n for n, i in axes.items()} for name in (*INPUTS, OUTPUT)}
    path = folder / "model.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter about the TorchScript exporter
        torch.onnx.export(LastHidden(merged).eval(), (sample, sample), str(path), dynamo=False,
                          input_names=list(INPUTS), output_names=[OUTPUT], dynamic_axes=dynamic,
                          opset_version=OPSET)
    return path

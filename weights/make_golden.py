"""Golden embeddings from the PyTorch reference, for the conformance tests.

    pip install -e '.[reference]'      # torch==2.13.0 (CPU), transformers<5, peft
    python weights/make_golden.py      # rewrites weights/golden/tiny-reference.npz

The reference is the model card's path: transformers `Qwen3Model` + PEFT with every task adapter
loaded and *unmerged* (W x + s·B(A x)), right-padded batches, last real token of the final
RMSNorm output (`hidden[arange(B), mask.sum(1) - 1]`), float32 compute. We store the raw pooled
vectors (before slicing/normalisation) so tests can check Matryoshka and normalisation too.
Never imported by mlx_jina or the default tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

from mlx_jina.spec import package_spec

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE / "tiny" / "jina-v5-tiny"
TEXTS = HERE / "golden" / "texts.json"
OUT = HERE / "golden" / "tiny-reference.npz"


def reference_model() -> PeftModel:
    config = json.loads((CHECKPOINT / "config.json").read_text("utf-8"))
    for key in ("architectures", "auto_map", "model_type", "task_names", "torch_dtype", "transformers_version"):
        config.pop(key, None)
    base = Qwen3Model.from_pretrained(CHECKPOINT, config=Qwen3Config(**config), torch_dtype=torch.float32)
    adapters = package_spec().adapters
    model = PeftModel.from_pretrained(base, CHECKPOINT / "adapters" / adapters[0], adapter_name=adapters[0])
    for name in adapters[1:]:
        model.load_adapter(CHECKPOINT / "adapters" / name, adapter_name=name)
    return model.eval()


def main() -> None:
    texts = json.loads(TEXTS.read_text("utf-8"))
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(CHECKPOINT / "tokenizer.json"),
                                        pad_token="<|endoftext|>", padding_side="right")
    model = reference_model()
    golden = {}
    for name, task in package_spec().tasks.items():
        model.set_adapter(task.adapter)
        batch = tokenizer([task.prompt + t for t in texts], padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        last = batch["attention_mask"].sum(dim=1) - 1
        golden[name] = hidden[torch.arange(len(texts)), last].float().numpy()
        golden[f"{name}/lengths"] = (last + 1).numpy()
    np.savez_compressed(OUT, **golden)
    print(f"wrote {OUT} for tasks {list(package_spec().tasks)}; torch {torch.__version__}")


if __name__ == "__main__":
    main()

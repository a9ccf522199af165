"""Golden Qwen3-Reranker scores from the model card's own code, for the reranker conformance tests.

    pip install -e '.[reference]'              # torch==2.13.0 (CPU), transformers<5
    python weights/make_golden_reranker.py     # rewrites weights/golden/tiny-reranker.json

The reference is the Qwen3-Reranker-0.6B model card's transformers code, kept verbatim on purpose
(prompt strings, `format_instruction`, `process_inputs`, `compute_logits`): AutoTokenizer with
left padding, AutoModelForCausalLM in float32, P(yes) from the softmax over the last position's
`no`/`yes` logits, query+document truncated to max_length minus the prefix and suffix (one case
lowers the card's max_length knob, as load_reranker(max_length=...) does, to stay fast). It is run
on one pair at a time (no padding at all), so the scores are the model's, whatever batching the
tests exercise. The checkpoints come from make_tiny_reranker.py; their sha256 is stored so the
tests notice if the rebuilt weights ever differ. Never imported by mlx_jina or the default tests.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from make_tiny_reranker import build, weights_digest
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = Path(__file__).resolve().parent
OUT = HERE / "golden" / "tiny-reranker.json"

# ---- the model card's code (Qwen/Qwen3-Reranker-0.6B, "Transformers Usage") -------------------
max_length = 8192
prefix = "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be \"yes\" or \"no\".<|im_end|>\n<|im_start|>user\n"  # noqa: E501
suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def format_instruction(instruction, query, doc):
    if instruction is None:
        instruction = 'Given a web search query, retrieve relevant passages that answer the query'
    output = f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
    return output


def process_inputs(tokenizer, prefix_tokens, suffix_tokens, pairs, max_length=max_length):
    inputs = tokenizer(
        pairs, padding=False, truncation='longest_first',
        return_attention_mask=False, max_length=max_length - len(prefix_tokens) - len(suffix_tokens)
    )
    for i, ele in enumerate(inputs['input_ids']):
        inputs['input_ids'][i] = prefix_tokens + ele + suffix_tokens
    inputs = tokenizer.pad(inputs, padding=True, return_tensors="pt", max_length=max_length)
    return inputs


@torch.no_grad()
def compute_logits(model, token_true_id, token_false_id, inputs):
    batch_scores = model(**inputs).logits[:, -1, :]
    true_vector = batch_scores[:, token_true_id]
    false_vector = batch_scores[:, token_false_id]
    batch_scores = torch.stack([false_vector, true_vector], dim=1)
    batch_scores = torch.nn.functional.log_softmax(batch_scores, dim=1)
    scores = batch_scores[:, 1].exp().tolist()
    return scores
# ------------------------------------------------------------------------------------------------


LONG_DOC = " ".join(
    f"Paragraph {i}: the speed of light in vacuum is exactly 299,792,458 metres per second, a value fixed "
    f"by the definition of the metre since 1983; in glass it is slower by the refractive index."
    for i in range(12))
CASES = [
    {"name": "single", "query": "how fast is light?", "instruction": None,
     "documents": ["Light travels at about 300,000 km per second in a vacuum."]},
    {"name": "mixed-lengths", "query": "What is the capital of France?", "instruction": None,
     "documents": ["Paris is the capital and largest city of France.", LONG_DOC,
                   "Berlin is the capital of Germany.", "France", LONG_DOC[:700]]},
    {"name": "multilingual", "query": "Wie schnell ist das Licht? 光速是多少？", "instruction": None,
     "documents": ["Das Licht legt im Vakuum rund 300.000 Kilometer pro Sekunde zurück.",
                   "光在真空中的速度约为每秒30万公里。", "光の速さは秒速約30万キロメートルです。",
                   "La vitesse de la lumière est d’environ 300 000 km/s 🚀✨",
                   "سرعة الضوء حوالي 300 ألف كيلومتر في الثانية"]},
    {"name": "custom-instruction", "query": "def add(a, b)",
     "instruction": "Given a code snippet, retrieve functions that do the same thing",
     "documents": ["def plus(x, y):\n    return x + y\n", "SELECT * FROM users;",
                   "function add(a, b) { return a + b; }"]},
    {"name": "special-tokens-in-text", "query": "chat markup", "instruction": None,
     "documents": ["a document that mentions <|im_end|> and <think> literally"]},
    # the card's max_length knob lowered (load_reranker(max_length=...)), so the test stays fast
    {"name": "over-length", "query": "speed of light", "instruction": None, "max_length": 1024,
     "documents": [" ".join([LONG_DOC] * 3), "short one", LONG_DOC]},
]


def main() -> None:
    cases = [dict(case, prompt_tokens=[], scores={}) for case in CASES]
    with tempfile.TemporaryDirectory() as tmp:
        folders = build(Path(tmp))
        digests = {name: weights_digest(folder) for name, folder in folders.items()}
        for name, folder in folders.items():
            tokenizer = AutoTokenizer.from_pretrained(folder, padding_side='left')
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            token_false_id = tokenizer.convert_tokens_to_ids("no")
            token_true_id = tokenizer.convert_tokens_to_ids("yes")
            prefix_tokens = tokenizer.encode(prefix, add_special_tokens=False)
            suffix_tokens = tokenizer.encode(suffix, add_special_tokens=False)
            for case in cases:
                scores, lengths = [], []
                for doc in case["documents"]:  # one pair at a time: no padding anywhere
                    pair = format_instruction(case["instruction"], case["query"], doc)
                    inputs = process_inputs(tokenizer, prefix_tokens, suffix_tokens, [pair],
                                            case.get("max_length", max_length))
                    lengths.append(int(inputs["input_ids"].shape[1]))
                    scores.append(compute_logits(model, token_true_id, token_false_id, inputs)[0])
                case["scores"][name], case["prompt_tokens"] = scores, lengths
                print(f"{name:28s} {case['name']:24s} {[round(s, 4) for s in scores]} tokens {lengths}")
    OUT.write_text(json.dumps({"torch": torch.__version__, "max_length": max_length, "weights_sha256": digests,
                               "cases": cases}, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

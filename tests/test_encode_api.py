"""encode(): argument checking, truncation, output types."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from mlx_jina.errors import InputError, InputTooLongError
from mlx_jina.postprocess import to_sqlite_vec_bits

TEXTS = ["How fast does light travel?", "Brot backen am Sonntag", "光速"]


@pytest.mark.parametrize("texts,task,kwargs,message", [
    ([""], "text-matching", {}, "text 0 is empty"),
    (["ok", "   \n"], "text-matching", {}, "text 1 is empty"),
    (["ok", 3], "text-matching", {}, "text 1 is a int"),
    (["ok", None], "text-matching", {}, "text 1 is a NoneType"),
    (b"bytes", "text-matching", {}, "texts must be a string or a list"),
    (["ok"], "retrieval", {}, "task 'retrieval' is not a task"),
    (["ok"], "separation", {}, "is not a task"),
    (["a", "b"], ["retrieval.query"], {}, "got 1 tasks for 2 texts"),
    (["ok"], "text-matching", {"dimensions": 33}, "dimensions=33 is not a Matryoshka size"),
    (["ok"], "text-matching", {"dimensions": 256}, "not a Matryoshka size of this model"),
    (["ok"], "text-matching", {"embedding_type": "int4"}, "embedding_type 'int4' is not one of"),
    (["ok"], "text-matching", {"batch_tokens": 0}, "batch_tokens must be a positive integer"),
    (["ok"], "text-matching", {"adapter_mode": "fast"}, "adapter_mode 'fast'"),
    (["ok"], None, {}, "task must be a task name or a list of them"),
    (["ok"], ["text-matching", 3], {}, "task must be a task name"),
    (["ok"], "text-matching", {"dimensions": 32.0}, "dimensions=32.0 is not a Matryoshka size"),
    (["ok"], "text-matching", {"dimensions": True}, "dimensions=True is not"),
    (["ok"], "text-matching", {"normalized": "no"}, "normalized must be True or False, not 'no'"),
    (["ok"], "text-matching", {"truncate": "no"}, "truncate must be True or False, not 'no'"),
    (["ok"], "text-matching", {"batch_tokens": True}, "batch_tokens must be a positive integer"),
    (["ok", "caf\udce9"], "text-matching", {}, "text 1 is not valid Unicode: a lone surrogate .* at character 3"),
    (["\ud83d alone"], "text-matching", {}, "text 0 is not valid Unicode"),
])
def test_bad_input_is_a_clear_error(tiny, texts, task, kwargs, message):
    with pytest.raises(InputError, match=message):
        tiny.encode(texts, task=task, **kwargs)


def test_over_length_input_raises_unless_truncate(tiny):
    long_text = "light travels fast " * 400
    with pytest.raises(InputTooLongError, match=r"limit is 512.*truncate=True"):
        tiny.encode([long_text, "short"], task="retrieval.query")
    truncated = tiny.encode([long_text], task="retrieval.query", truncate=True)
    ids = tiny.tokenize([long_text], ["retrieval.query"], truncate=True)[0]
    assert len(ids) == tiny.max_length
    assert ids[:3] == tiny.tokenize(["x"], ["retrieval.query"])[0][:3]  # the "Query: " prefix is kept
    direct = tiny.embed_ids([ids], ["retrieval.query"])
    np.testing.assert_allclose(truncated[0], direct[0] / np.linalg.norm(direct[0]), atol=1e-6)


def test_single_string_and_empty_list(tiny):
    one = tiny.encode("just one", task="text-matching")
    assert one.shape == (128,)
    assert tiny.encode([], task="text-matching").shape == (0, 128)


def test_float_types(tiny):
    f32 = tiny.encode(TEXTS, task="text-matching")
    assert f32.dtype == np.float32 and np.allclose(np.linalg.norm(f32, axis=1), 1, atol=1e-5)
    f16 = tiny.encode(TEXTS, task="text-matching", embedding_type="float16")
    assert f16.dtype == np.float16 and np.abs(f16 - f32).max() < 1e-3
    raw = tiny.encode(TEXTS, task="text-matching", normalized=False)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1, atol=1e-2)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), f32, atol=1e-6)


def test_int8_keeps_direction(tiny):
    f32 = tiny.encode(TEXTS, task="clustering")
    i8 = tiny.encode(TEXTS, task="clustering", embedding_type="int8")
    assert i8.dtype == np.int8 and np.abs(i8).max() == 127
    as_float = i8.astype(np.float32)
    cos = np.sum(as_float * f32, axis=1) / np.linalg.norm(as_float, axis=1)
    assert cos.min() > 0.999


def test_bit_types_and_their_order(tiny):
    f32 = tiny.encode(TEXTS, task="retrieval.passage", dimensions=64)
    ubinary = tiny.encode(TEXTS, task="retrieval.passage", dimensions=64, embedding_type="ubinary")
    binary = tiny.encode(TEXTS, task="retrieval.passage", dimensions=64, embedding_type="binary")
    assert ubinary.dtype == np.uint8 and ubinary.shape == (3, 8)
    assert binary.dtype == np.int8
    signs = f32 > 0
    assert ((ubinary[:, 0] >> 7) & 1).tolist() == signs[:, 0].tolist()  # MSB-first: bit 7 of byte 0 = dim 0
    np.testing.assert_array_equal(np.unpackbits(ubinary, axis=1).astype(bool), signs)
    np.testing.assert_array_equal(binary.astype(np.int16) + 128, ubinary)
    lsb = to_sqlite_vec_bits(ubinary)
    np.testing.assert_array_equal(lsb, np.packbits(signs, axis=1, bitorder="little"))
    assert (lsb[:, 0] & 1).tolist() == signs[:, 0].tolist()


def test_base64_is_little_endian_float32(tiny):
    f32 = tiny.encode(TEXTS, task="text-matching", dimensions=32)
    b64 = tiny.encode(TEXTS, task="text-matching", dimensions=32, embedding_type="base64")
    decoded = np.stack([np.frombuffer(base64.b64decode(s), dtype="<f4") for s in b64])
    np.testing.assert_array_equal(decoded, f32)


def test_single_task_modes_refuse_mixed_tasks(tiny):
    for mode in ("shared", "merged"):
        with pytest.raises(InputError, match="needs a single task"):
            tiny.encode(["a", "b"], task=["retrieval.query", "clustering"], adapter_mode=mode)


def test_merged_mode_needs_a_float_base(tiny_path):
    import mlx_jina

    quantized = mlx_jina.load(tiny_path, quantize=8)
    with pytest.raises(InputError, match="needs a float base"):
        quantized.encode(["a"], task="clustering", adapter_mode="merged")
    assert quantized.encode(["a"], task="clustering").shape == (1, 128)  # auto never merges it


def test_ids_made_by_tokenize_give_the_same_vectors(tiny):
    ids = tiny.tokenize(TEXTS, ["retrieval.passage"] * len(TEXTS), truncate=True)
    again = tiny.encode(TEXTS, task="retrieval.passage", truncate=True, ids=ids)
    assert np.array_equal(again, tiny.encode(TEXTS, task="retrieval.passage", truncate=True))
    with pytest.raises(InputError, match="got 2 token id rows for 3 texts"):
        tiny.encode(TEXTS, task="retrieval.passage", ids=ids[:2])

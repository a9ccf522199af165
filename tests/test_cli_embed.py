from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from mlx_jina.cli import main


def test_embed_arguments_and_stdin_agree(tiny, tiny_path):
    runner = CliRunner()
    args = ["embed", "--model", str(tiny_path), "--task", "retrieval.query", "--dimensions", "64"]
    from_args = runner.invoke(main, args + ["first text", "second text"])
    from_stdin = runner.invoke(main, args, input="first text\nsecond text\n")
    assert from_args.exit_code == 0 and from_stdin.exit_code == 0, from_args.output
    assert from_args.output == from_stdin.output
    rows = [json.loads(line) for line in from_args.output.splitlines()]
    assert [r["index"] for r in rows] == [0, 1]
    expected = tiny.encode(["first text", "second text"], task="retrieval.query", dimensions=64)
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-6)


def test_embed_errors_are_clean(tiny_path):
    runner = CliRunner()
    result = runner.invoke(main, ["embed", "--model", str(tiny_path), "ok", ""])
    assert result.exit_code == 1 and "text 1 is empty" in result.output
    result = runner.invoke(main, ["embed", "--model", str(tiny_path / "missing"), "ok"])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["embed", "--model", str(tiny_path), "--task", "nope", "ok"])
    assert result.exit_code == 2 and "nope" in result.output


def test_embed_base64_lines_are_strings(tiny_path):
    result = CliRunner().invoke(main, ["embed", "--model", str(tiny_path), "--embedding-type", "base64", "x"])
    assert isinstance(json.loads(result.output)["embedding"], str)


def test_embed_text_that_is_not_utf8_names_the_text(tiny_path):
    runner = CliRunner()
    args = ["embed", "--model", str(tiny_path)]
    stdin = runner.invoke(main, args, input=b"fine\ncaf\xe9 latin-1\n")
    assert stdin.exit_code == 1 and "text 1 (stdin line 2) is not valid UTF-8 at byte 3" in stdin.output
    argv = runner.invoke(main, args + ["fine", "caf\udce9"])  # how Python hands over a non-UTF-8 argument
    assert argv.exit_code == 1 and "text 1 is not valid Unicode" in argv.output
    assert "Traceback" not in stdin.output + argv.output

"""`mlx-jina mcp` end to end: the official MCP SDK's own stdio client spawns the server, lists its
tools and calls them, as Claude Desktop or any other MCP client would."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import indexed_db, write_notes
from mcp import Client, StdioServerParameters

import mlx_jina
from mlx_jina.cli import main
from mlx_jina.embedder import Embedder

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "mcp" / "claude_desktop_config.json"


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_notes(tmp_path_factory.mktemp("notes"), {
        "cooking.md": "# Shakshuka\n\nEggs poached in a spiced tomato and pepper sauce.\n",
        "work/bikes.md": "# Bike chain\n\nClean and oil the chain every few hundred km.\n"
                         + "".join(f"line {i}\n" for i in range(4, 40)),
        "secret.txt": "not indexed"})


@pytest.fixture(scope="module")
def kb_db(tmp_path_factory: pytest.TempPathFactory, tiny: Embedder, notes: Path) -> Path:
    return indexed_db(tmp_path_factory, tiny, notes, exclude=["secret.txt"])


def example_args(db: Path) -> list[str]:
    """The arguments of examples/mcp/claude_desktop_config.json, pointed at `db`."""
    [entry] = json.loads(EXAMPLE_CONFIG.read_text())["mcpServers"].values()
    assert Path(entry["command"]).name == "mlx-jina"
    args = list(entry["args"])
    args[args.index("--db") + 1] = str(db)
    return args


async def session(db: Path, calls: list[tuple[str, dict[str, Any]]], *extra: str) -> tuple[list[Any], list[Any]]:
    """Spawn `mlx-jina` with the example config's arguments (and `extra`), list its tools, make the calls."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "mlx_jina", *example_args(db), *extra])
    async with Client(params, read_timeout_seconds=60) as client:
        tools = (await client.list_tools()).tools
        return tools, [await client.call_tool(name, args) for name, args in calls]


def test_stdio_tools(kb_db: Path, notes: Path, tiny: Embedder) -> None:
    tools, (found, vector, read, relative, tail, status, bad_k, outside, missing, no_reranker) = asyncio.run(session(
            kb_db, [
        ("search", {"query": "shakshuka eggs", "k": 3, "mode": "keyword"}),
        ("search", {"query": "bike chain", "kinds": ["md"], "path": "work/**"}),
        ("get", {"path": str(notes / "work" / "bikes.md"), "max_lines": 2}),
        ("get", {"path": "work/bikes.md", "from_line": 5, "max_lines": 3}),
        ("get", {"path": "work/bikes.md", "from_line": 39}),
        ("status", {}),
        ("search", {"query": "eggs", "k": 0}),
        ("get", {"path": str(notes / "secret.txt")}),
        ("get", {"path": "../" + notes.name + "/secret.txt"}),
        ("search", {"query": "eggs", "rerank": True}),
    ]))
    by_name = {t.name: t for t in tools}
    assert set(by_name) == {"search", "get", "status"}
    assert all(t.description and len(t.description) > 60 for t in tools)  # written for a model to read
    search_args = set(by_name["search"].input_schema["properties"])
    assert search_args == {"query", "k", "mode", "path", "kinds", "since", "rerank"}
    assert by_name["search"].annotations.read_only_hint is True

    [hit] = found.structured_content["hits"][:1]
    assert hit["rel"] == "cooking.md" and hit["heading"] == "Shakshuka" and hit["lines"] == "1-3"
    assert "Eggs poached" in hit["snippet"] and hit["score"] > 0
    assert [h["rel"] for h in vector.structured_content["hits"]] == ["work/bikes.md"]  # filters applied
    assert vector.structured_content["mode"] == "keyword"  # no mode asked, tiny-checkpoint index: keywords

    assert read.structured_content["text"] == "# Bike chain\n" and read.structured_content["to_line"] == 2
    assert relative.structured_content["text"] == "line 5\nline 6\nline 7"
    assert relative.structured_content["total_lines"] == 39 and not relative.structured_content["changed_since_indexed"]
    assert tail.structured_content["text"] == "line 39" and tail.structured_content["to_line"] == 39

    info = status.structured_content
    assert info["files"] == 2 and info["folders"] == [{"folder": str(notes.resolve()), "files": 2}]
    assert info["dimensions"] == tiny.dimensions[-1] and info["last_indexed"]

    assert bad_k.is_error and "k" in bad_k.content[0].text
    for refused in (outside, missing):  # a file next to the notes, and a path that walks out
        assert refused.is_error and "not a note in this index" in refused.content[0].text
    assert no_reranker.is_error and "--reranker" in no_reranker.content[0].text
    assert status.structured_content["reranker"] is None


def test_stdio_search_reranks_with_reranker(kb_db: Path, tiny: Embedder, tiny_reranker: Any,
                                            tiny_reranker_path: Path) -> None:
    query = {"query": "bike chain eggs", "k": 2, "mode": "keyword"}
    _, (reranked, status) = asyncio.run(session(kb_db, [("search", query | {"rerank": True}), ("status", {})],
                                                "--reranker", str(tiny_reranker_path)))
    with mlx_jina.KnowledgeBase(kb_db, model=tiny, reranker=tiny_reranker) as kb:
        expected = kb.search("bike chain eggs", k=2, mode="keyword", rerank=True)
    hits = reranked.structured_content["hits"]
    assert [h["rel"] for h in hits] == [h.rel for h in expected] and len(hits) == 2
    assert [h["rerank_score"] for h in hits] == pytest.approx([h.rerank_score for h in expected], abs=1e-5)
    assert status.structured_content["reranker"] == str(tiny_reranker_path)


def test_the_zed_example_runs_the_same_command_as_the_claude_one() -> None:
    [claude] = json.loads(EXAMPLE_CONFIG.read_text())["mcpServers"].values()
    [zed] = json.loads((EXAMPLE_CONFIG.parent / "zed_settings.json").read_text())["context_servers"].values()
    assert (zed["command"], zed["args"]) == (claude["command"], claude["args"])


def test_cli_refuses_a_missing_index(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["mcp", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "no index at" in result.output

"""`mlx-jina index | add | remove | search | status | watch | doctor`: the knowledge base from the shell.

Mirrors mlx_jina.KnowledgeBase; every command takes --db (default: $MLX_JINA_DB or the platform's
user data folder) and the shared model options. Where the default model cannot be loaded (not in
the Hugging Face cache, no network) the bundled tiny checkpoint is used, with a loud warning.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from mlx_jina.cli import main
from mlx_jina.cli.options import (
    load_from_options,
    load_reranker_from_options,
    model_options,
    remote_from_options,
    remote_options,
    reranker_options,
)
from mlx_jina.cli.serve import TOKEN_ENV
from mlx_jina.cli.signals import interrupt_safely
from mlx_jina.errors import ModelLoadError
from mlx_jina.server.config import LOCAL_URL, SERVER_ENV
from mlx_jina.spec import package_spec

if TYPE_CHECKING:
    from mlx_jina.embedder import Embedder
    from mlx_jina.kb import KnowledgeBase
    from mlx_jina.kb.store import Binding
    from mlx_jina.rerank import Reranker

TINY_WARNING = ("warning: the default model {model} could not be loaded:\n  {why}\n"
                "Using the bundled tiny test checkpoint instead: its results are NOT semantically meaningful.")


def db_option(command: Any) -> Any:
    from mlx_jina.kb.knowledge_base import DB_ENV

    return click.option(
        "--db", type=click.Path(dir_okay=False, path_type=Path), envvar=DB_ENV, default=None,
        show_default=f"${DB_ENV}, else ~/.local/share/mlx-jina/index.db (Linux) or "
                     "~/Library/Application Support/mlx-jina/index.db (macOS)",
        help="The SQLite file of the index.",
    )(command)


def _remote(opts: dict[str, Any], *, wanted: bool = True) -> Any:
    """The RemoteEmbedder --embed-url asks for, or None (the remote options are taken out of `opts`).
    An explicit --model names the tokenizer to chunk with; else the served model's own."""
    url = opts.pop("embed_url")
    style, task, name, concurrency = (opts.pop(k) for k in ("embed_style", "embed_task", "embed_model", "concurrency"))
    if url is None or not wanted:
        return None
    explicit = click.get_current_context().get_parameter_source("model") is not ParameterSource.DEFAULT
    return remote_from_options(url, model=name, style=style, task=task, concurrency=concurrency,
                               tokenizer=opts["model"] if explicit else None)


def _load(model_opts: dict[str, Any]) -> Embedder:
    """The model the options name; if that is the default and it cannot be had, the tiny one."""
    try:
        return load_from_options(**model_opts)
    except ModelLoadError as exc:
        if click.get_current_context().get_parameter_source("model") is not ParameterSource.DEFAULT:
            raise
        from mlx_jina.embedder import TINY_CHECKPOINT

        click.secho(TINY_WARNING.format(model=model_opts["model"], why=exc), err=True, fg="yellow")
        return load_from_options(str(TINY_CHECKPOINT), None, model_opts["quantize"], model_opts["dtype"])


def _kb(db: Path | None, model: Embedder | str | None = None, dims: int | None = None, *,
        must_exist: bool = False, reranker: Reranker | None = None, revision: str | None = None,
        quantize: int | None = None) -> KnowledgeBase:
    """model: an Embedder, or a name or folder loaded on first need (at revision, quantize).
    must_exist: for status, search, remove (never create a DB). A file that is not writable opens read-only."""
    from mlx_jina.kb import KnowledgeBase
    from mlx_jina.kb.knowledge_base import default_db_path

    path = db or default_db_path()
    if must_exist and not path.exists():
        raise click.ClickException(f"no index at {path}: build one with `mlx-jina index FOLDER` (or pass --db)")
    return KnowledgeBase(path, model=model, dimensions=dims, reranker=reranker, revision=revision, quantize=quantize)


def _is_index_model(model_opts: dict[str, Any], bound: Binding) -> bool:
    """Whether --model (with --revision, --quantize) names the model the index was built with, as the
    index records it: then a running server that serves that model may embed the query. Compared by
    name only: nothing is downloaded or loaded to decide it."""
    from mlx_jina.model import hub

    quantize = int(model_opts["quantize"]) if model_opts["quantize"] else None
    path = Path(model_opts["model"]).expanduser()
    if path.exists():
        model_id, revision = str(path.resolve()), None  # a local folder, as the index records it
    else:
        model_id, revision = model_opts["model"], hub.hub_revision(model_opts["model"], model_opts["revision"])
    return (model_id, revision, quantize) == (bound.model_id, bound.revision, bound.quantization)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds") if ts else "never"


def _print_report(report: Any, as_json: bool, *, list_skipped: bool = True) -> None:
    from mlx_jina.kb.paths import printable

    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    for item in report.skipped if list_skipped else ():
        click.echo(f"skipped {printable(item['path'])}: {printable(item['reason'])}", err=True)
    click.echo(f"{report.seen} files seen: {report.added} added, {report.changed} changed, {report.renamed} renamed, "
               f"{report.removed} removed, {report.unchanged} unchanged, {len(report.skipped)} skipped; "
               f"{report.chunks_embedded} chunks embedded, {report.chunks_reused} reused")


def index_options(command: Any) -> Any:
    """Options shared by `index` and `watch`."""
    for option in reversed([
        click.option("--include", multiple=True, help="Only files matching this gitignore-style glob."),
        click.option("--exclude", multiple=True, help="Leave out files matching this gitignore-style glob."),
        click.option("--max-bytes", type=click.IntRange(min=1), default=None,
                     help="Skip files larger than this many bytes (default 5 MB)."),
        click.option("--dims", type=click.IntRange(min=1), default=None,
                     help="Matryoshka size to store (default: full)."),
        click.option("--follow-links", is_flag=True, help="Follow symlinks that lead outside FOLDER."),
        click.option("--allow-empty", "--prune", "allow_empty", is_flag=True,
                     help="If FOLDER is missing or has nothing to index, remove its files from the index "
                          "(without this, such a run is refused: an unmounted drive must not wipe the index)."),
    ]):
        command = option(command)
    return command


def _index_args(include: tuple[str, ...], exclude: tuple[str, ...], max_bytes: int | None, follow_links: bool,
                allow_empty: bool) -> dict[str, Any]:
    return ({"include": include, "exclude": exclude, "follow_links": follow_links, "allow_empty": allow_empty}
            | ({"max_bytes": max_bytes} if max_bytes is not None else {}))


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--reembed", is_flag=True, help="Drop every stored vector and embed again (new model or --dims).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@db_option
@model_options
@remote_options
@index_options
def index(folder: Path, reembed: bool, as_json: bool, db: Path | None, include: tuple[str, ...],
          exclude: tuple[str, ...], max_bytes: int | None, dims: int | None, follow_links: bool, allow_empty: bool,
          **model_opts: Any) -> None:
    """Index FOLDER: embed new and changed files, follow renames, drop deleted files. With --embed-url the
    chunks are embedded by that server (token-budgeted batches, --concurrency requests in flight)."""
    remote = _remote(model_opts)
    with interrupt_safely(), _kb(db, remote or _load(model_opts), dims) as kb:
        report = kb.index(folder, reembed=reembed, progress=not as_json and sys.stderr.isatty(),
                          **_index_args(include, exclude, max_bytes, follow_links, allow_empty))
    _print_report(report, as_json)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of counts per PATH.")
@db_option
@model_options
def add(paths: tuple[Path, ...], as_json: bool, db: Path | None, **model_opts: Any) -> None:
    """Index PATHS (files or folders) without removing anything else from the index."""
    with _kb(db, _load(model_opts)) as kb:
        for path in paths:
            report = kb.add(path, progress=not as_json and sys.stderr.isatty())
            if as_json:
                click.echo(json.dumps({"path": str(path)} | report.as_dict()))
            else:
                _print_report(report, False)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print {\"path\", \"removed\"} per PATH.")
@db_option
def remove(paths: tuple[Path, ...], as_json: bool, db: Path | None) -> None:
    """Drop PATHS (files, or every file under a folder) from the index; the files stay on disk."""
    missing = []
    with _kb(db, must_exist=True) as kb:
        for path in paths:
            removed = kb.remove(path)
            missing += [] if removed else [str(path)]
            click.echo(json.dumps({"path": str(path), "removed": removed}) if as_json
                       else f"{path}: {removed} file{'s' * (removed != 1)} removed from the index")
    if missing:
        raise click.ClickException(f"nothing in the index at {', '.join(missing)}")


@main.command()
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Number of hits.")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "keyword"]), default="hybrid", show_default=True)
@click.option("--path", "path_glob", default=None, help="Only files whose path matches this glob, e.g. 'work/**'.")
@click.option("--type", "kinds", multiple=True, help="Only these kinds (markdown, code, pdf) or extensions (md, py).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]), default=None,
              help="Only files modified on or after this date.")
@click.option("--per-doc", type=click.IntRange(min=1), default=2, show_default=True,
              help="At most this many hits per file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@click.option("--rerank", "rerank", is_flag=True,
              help="Recall --candidates hits, then let the Qwen3-Reranker pick the best k.")
@click.option("--candidates", type=int, default=None,
              help=f"Hits recalled before reranking (default: max(k, {package_spec().reranker.default_candidates})).")
@click.option("--instruction", default=None, help="The reranker's task (default: the model card's web-search one).")
@click.option("--server/--no-server", "use_server", default=True, show_default=True,
              help=f"Embed the query through a running `mlx-jina serve` (${SERVER_ENV}, default {LOCAL_URL}; "
                   f"${TOKEN_ENV} if it needs a token) when it serves the index's model, instead of loading "
                   "the model here.")
@click.option("-v", "--verbose", is_flag=True, help="Say how the query was embedded and how long each step took.")
@db_option
@model_options
@remote_options
@reranker_options
def search(query: str, k: int, mode: str, path_glob: str | None, kinds: tuple[str, ...], since: datetime | None,
           per_doc: int, as_json: bool, rerank: bool, candidates: int | None, instruction: str | None,
           use_server: bool, verbose: bool, db: Path | None, reranker: str, reranker_quantize: str | None,
           **model_opts: Any) -> None:
    """Search the index for QUERY. Without --model, queries use the model the index was built
    with; either way a running `mlx-jina serve` serving the index's model embeds the query
    (unless --no-server or --dtype); keyword mode needs no model. With --embed-url the query is
    embedded by that server. With --rerank, each hit shows its recall score and its rerank score
    (P(relevant), 0..1)."""
    context = click.get_current_context()
    explicit = context.get_parameter_source("model") is not ParameterSource.DEFAULT
    remote = _remote(model_opts, wanted=mode != "keyword")
    model: Any = remote
    named: dict[str, Any] = {}  # how the KB loads a named model on first need (a server may embed the query)
    if explicit and remote is None and mode != "keyword":
        model = load_from_options(**model_opts) if model_opts["dtype"] else model_opts["model"]
        named = {"revision": model_opts["revision"],
                 "quantize": int(model_opts["quantize"]) if model_opts["quantize"] else None}
    second = load_reranker_from_options(reranker, reranker_quantize) if rerank else None
    with _kb(db, model, must_exist=True, reranker=second, **named) as kb:
        if model is None and mode != "keyword" and kb.built_with_test_checkpoint:
            if context.get_parameter_source("mode") is ParameterSource.DEFAULT:
                mode = "keyword"
                click.secho("note: this index was built with the bundled tiny test checkpoint, whose vectors are NOT "
                            "semantically meaningful: searching by keywords only (--mode hybrid to mix them in).",
                            err=True, fg="yellow")
            else:
                click.secho("warning: this index was built with the bundled tiny test checkpoint: vector scores are "
                            "NOT semantically meaningful.", err=True, fg="yellow")
        from mlx_jina.kb import local_server

        start = time.perf_counter()
        vector, note = None, "keyword mode: no query embedding"
        bound = kb.store.binding()
        lazy = mode != "keyword" and bound is not None and (model is None or isinstance(model, str))
        if lazy and not use_server:
            note = "--no-server: embedding in-process"
        elif lazy and bound is not None and (model is None or _is_index_model(model_opts, bound)):
            vector, note = local_server.embed_query(local_server.server_url(), query, bound,
                                                    token=os.environ.get(TOKEN_ENV))
        elif remote is not None:
            note = "--embed-url: embedding through that server"
        elif model is not None:
            note = "--model given: embedding in-process with it"
        embedded = time.perf_counter()
        hits = kb.search(query, k=k, mode=mode, path=path_glob, kinds=kinds,
                         since=since, per_doc=per_doc, rerank=rerank, candidates=candidates,
                         instruction=instruction, query_vector=vector)
        if verbose:
            click.echo(f"{note}; server probe {(embedded - start) * 1e3:.0f} ms, search (with any model load and "
                       f"in-process embedding) {(time.perf_counter() - embedded) * 1e3:.0f} ms", err=True)
    from mlx_jina.kb.paths import printable

    for rank, hit in enumerate(hits, 1):
        if as_json:
            click.echo(json.dumps(hit.as_dict()))
            continue
        heading = f"  {hit.heading}" if hit.heading else ""
        where = f"{printable(hit.path)}:{hit.start_line}-{hit.end_line}"
        scores = f"{hit.score:.4f}" if hit.rerank_score is None else \
            f"rerank {hit.rerank_score:.4f}  recall {hit.score:.4f}"
        click.echo(click.style(f"{rank:2d}. {scores}  {where}", bold=True)
                   + heading)
        snippet = hit.marked(click.style("", fg="yellow", bold=True, reset=False), click.style("", reset=True))
        click.echo("\n".join("      " + line for line in snippet.splitlines()) + "\n")
    if not hits and not as_json:
        click.echo("no results", err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@db_option
def status(as_json: bool, db: Path | None) -> None:
    """Files, chunks, model, dimensions, database size and last index time."""
    with _kb(db, must_exist=True) as kb:
        info = kb.status()
    if as_json:
        click.echo(json.dumps(info))
        return
    info["db_bytes"] = f"{info['db_bytes'] / 1e6:.1f} MB"
    info["last_index_at"] = _when(info["last_index_at"])
    for key, value in info.items():
        click.echo(f"{key:15s} {value if value is not None else '-'}")


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--debounce", type=click.IntRange(min=0), default=1600, show_default=True,
              help="Milliseconds of quiet before re-indexing.")
@db_option
@model_options
@index_options
def watch(folder: Path, debounce: int, db: Path | None, include: tuple[str, ...], exclude: tuple[str, ...],
          max_bytes: int | None, dims: int | None, follow_links: bool, allow_empty: bool, **model_opts: Any) -> None:
    """Index FOLDER, then keep the index current as files change (Ctrl-C stops)."""
    from mlx_jina.kb.watch import watch as watch_folder

    with interrupt_safely(), _kb(db, _load(model_opts), dims) as kb:
        click.echo(f"watching {folder.resolve()} (Ctrl-C to stop)", err=True)
        reports: list[Any] = []  # skipped files are listed once, not on every change

        def show(report: Any) -> None:
            _print_report(report, False, list_skipped=not reports)
            reports.append(report)

        watch_folder(kb, folder, debounce_ms=debounce, on_report=show,
                     **_index_args(include, exclude, max_bytes, follow_links, allow_empty))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@db_option
def doctor(as_json: bool, db: Path | None) -> None:
    """What this installation uses: SQLite binding and extensions, BLAS, MLX, default paths, and
    whether the database is usable (ok, missing, not a mlx-jina database, corrupt, read-only)."""
    import platform

    from mlx_jina import blas
    from mlx_jina.cli.options import MODEL_ENV
    from mlx_jina.kb.connect import probe
    from mlx_jina.kb.knowledge_base import default_db_path
    from mlx_jina.spec import package_spec

    report: dict[str, Any] = {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "sqlite_bindings": dict(probe()),
    }
    from mlx_jina.kb.connect import backend

    report["sqlite_used"] = backend().describe()
    report["blas"] = blas.status
    try:
        from importlib.metadata import version

        import mlx.core as mx

        report["mlx"] = f"{version('mlx')} on {mx.default_device()}"
    except Exception as exc:  # noqa: BLE001 - a broken MLX is exactly what doctor should show
        report["mlx"] = f"unusable: {exc}"
    from mlx_jina.kb.dbfile import health

    report["db"] = str(db or default_db_path())
    report["db_state"] = health(db or default_db_path())
    report["model"] = f"{package_spec().default_model} (override with --model or ${MODEL_ENV})"
    if as_json:
        click.echo(json.dumps(report))
        return
    for key, value in report.items():
        if isinstance(value, dict):
            click.echo(key)
            for name, state in value.items():
                click.echo(f"  {name:18s} {state}")
        else:
            click.echo(f"{key:18s} {value}")

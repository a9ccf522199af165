"""scan(): what gets indexed, what is reported as skipped and why, on real folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlx_jina.errors import InputError
from mlx_jina.ingest import walk
from mlx_jina.ingest.walk import FileEntry, Skipped, scan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "notes"


def write(root: Path, rel: str, data: str | bytes = "hello\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def run(root: Path, **kw) -> tuple[list[str], dict[str, str]]:
    found, skipped = [], {}
    for item in scan(root, **kw):
        if isinstance(item, FileEntry):
            found.append(item.rel)
        else:
            assert isinstance(item, Skipped)
            skipped[item.rel] = item.reason
    return found, skipped


def test_file_entry_fields(tmp_path):
    path = write(tmp_path, "a/b/note.md", "# Hi\n")
    (entry,) = list(scan(tmp_path))
    assert entry == FileEntry(path=path, rel="a/b/note.md", size=5, mtime=path.stat().st_mtime)
    assert entry.path.is_absolute()


def test_order_is_sorted_and_deterministic(tmp_path):
    for rel in ["z.md", "a/y.md", "b.txt", "a/c/x.md", "A.md"]:
        write(tmp_path, rel)
    found, _ = run(tmp_path)
    assert found == ["A.md", "a/c/x.md", "a/y.md", "b.txt", "z.md"]
    assert run(tmp_path) == run(tmp_path)


def test_gitignore_root_and_nested(tmp_path):
    write(tmp_path, ".gitignore", "*.log\nbuild/\n")
    write(tmp_path, "sub/.gitignore", "/only-here.md\n!keep.log\n")
    for rel in ["a.md", "x.log", "build/out.md", "sub/keep.log", "sub/other.log",
                "sub/only-here.md", "sub/deeper/only-here.md", "other/only-here.md"]:
        write(tmp_path, rel)
    found, skipped = run(tmp_path)
    assert found == ["a.md", "other/only-here.md", "sub/deeper/only-here.md", "sub/keep.log"]
    assert skipped == {
        "build/": "ignored by .gitignore",  # the folder is reported once and not entered
        "x.log": "ignored by .gitignore",
        "sub/only-here.md": "ignored by .gitignore",
        "sub/other.log": "ignored by .gitignore",
    }


def test_nested_gitignore_does_not_leak_to_siblings(tmp_path):
    write(tmp_path, "a/.gitignore", "*.md\n")
    write(tmp_path, "a/x.md")
    write(tmp_path, "b/x.md")
    found, skipped = run(tmp_path)
    assert found == ["b/x.md"]
    assert skipped == {"a/x.md": "ignored by .gitignore"}


def test_exclude_globs_prune_folders_and_name_the_pattern(tmp_path):
    for rel in ["drafts/a.md", "drafts/deep/b.md", "notes/c.md", "notes/c.tmp.md"]:
        write(tmp_path, rel)
    found, skipped = run(tmp_path, exclude=["*.tmp.md", "drafts/**"])
    assert found == ["notes/c.md"]
    assert skipped == {"drafts/": "matched exclude 'drafts/**'", "notes/c.tmp.md": "matched exclude '*.tmp.md'"}


def test_include_globs_keep_only_matches(tmp_path):
    for rel in ["a.md", "b.txt", "journal/2025.txt", "deep/er/c.md"]:
        write(tmp_path, rel)
    found, skipped = run(tmp_path, include=["*.md", "journal/"])
    assert found == ["a.md", "deep/er/c.md", "journal/2025.txt"]
    assert skipped == {"b.txt": "not matched by include patterns"}


def test_exclude_wins_over_include(tmp_path):
    write(tmp_path, "a.md")
    write(tmp_path, "secret.md")
    found, skipped = run(tmp_path, include=["*.md"], exclude=["secret.md"])
    assert found == ["a.md"]
    assert skipped == {"secret.md": "matched exclude 'secret.md'"}


def test_hidden_and_noise_folders_are_skipped_silently(tmp_path):
    for rel in [".git/config", ".obsidian/workspace.json", ".hidden.md", "node_modules/pkg/readme.md",
                "src/__pycache__/m.txt", "venv/lib/x.py", "myenv/pyvenv.cfg", "myenv/lib/site.py", "keep.md"]:
        write(tmp_path, rel)
    assert run(tmp_path) == (["keep.md"], {})


def test_binary_files(tmp_path):
    write(tmp_path, "nul.txt", b"text then \0 nul")
    write(tmp_path, "blob", b"\x00\x01\x02")
    write(tmp_path, "photo.PNG", b"not really a png but the extension says so")
    write(tmp_path, "README", "extension-less text is text\n")
    found, skipped = run(tmp_path)
    assert found == ["README"]
    assert skipped == {"nul.txt": "binary file", "blob": "binary file", "photo.PNG": "binary file"}


def test_nul_after_sniff_window_is_not_binary(tmp_path):
    write(tmp_path, "late.txt", b"a" * 9000 + b"\0")
    assert run(tmp_path)[0] == ["late.txt"]


def test_too_large(tmp_path):
    write(tmp_path, "small.md", "x" * 100)
    write(tmp_path, "big.md", "x" * 101)
    with open(tmp_path / "huge.txt", "wb") as f:  # sparse: 6 MB without writing them
        f.truncate(6 * 1024 * 1024)
    assert run(tmp_path, max_bytes=100) == (["small.md"], {"big.md": "larger than 100 bytes",
                                                          "huge.txt": "larger than 100 bytes"})
    assert run(tmp_path)[1] == {"huge.txt": "larger than 5 MB"}


def test_unsupported_type(tmp_path):
    write(tmp_path, "data.xyz", "plain text but unknown extension")
    assert run(tmp_path) == ([], {"data.xyz": "unsupported file type '.xyz'"})


def test_symlink_loop_and_broken_symlink(tmp_path):
    write(tmp_path, "sub/note.md")
    os.symlink(tmp_path / "sub", tmp_path / "sub" / "loop")
    os.symlink(tmp_path / "missing.md", tmp_path / "dangling.md")
    os.symlink(tmp_path / "sub", tmp_path / "alias")
    found, skipped = run(tmp_path)
    assert found == ["sub/note.md"]
    assert skipped == {
        "alias/": "already scanned through another symlink",
        "dangling.md": "broken symlink",
        "sub/loop/": "symlink loop",
    }


def test_symlinks_leaving_the_folder_are_not_followed_unless_asked(tmp_path):
    target = write(tmp_path / "elsewhere", "real.md")
    write(tmp_path / "elsewhere", "sub/deep.md")
    (tmp_path / "notes").mkdir()
    os.symlink(target, tmp_path / "notes" / "link.md")
    os.symlink(tmp_path / "elsewhere" / "sub", tmp_path / "notes" / "linked-dir")
    assert run(tmp_path / "notes") == ([], {"link.md": "symlink to outside the folder (not followed)",
                                            "linked-dir/": "symlink to outside the folder (not followed)"})
    entries = list(scan(tmp_path / "notes", follow_links=True))
    assert [(e.rel, e.path) for e in entries] == [("link.md", tmp_path / "notes" / "link.md"),
                                                  ("linked-dir/deep.md", tmp_path / "notes" / "linked-dir" / "deep.md")]


def test_a_file_reachable_twice_is_indexed_once_under_its_real_path(tmp_path):
    write(tmp_path, "b-real.md")
    os.symlink(tmp_path / "b-real.md", tmp_path / "a-link.md")  # sorts first, but the real path wins
    os.link(tmp_path / "b-real.md", tmp_path / "c-hardlink.md")
    assert run(tmp_path) == (["b-real.md"], {"a-link.md": "same file as b-real.md",
                                             "c-hardlink.md": "same file as b-real.md"})


def test_very_deep_tree_is_walked_without_recursion_limits(tmp_path):
    deep = tmp_path.joinpath(*["d"] * 650)  # 1300 characters: deeper than Python's recursion limit
    deep.mkdir(parents=True)
    (deep / "bottom.md").write_text("deep\n")
    write(tmp_path, "top.md")
    found, skipped = run(tmp_path)
    assert found == ["d/" * 650 + "bottom.md", "top.md"] and skipped == {}


def test_path_too_long_for_the_os_is_one_skipped_line(tmp_path, monkeypatch):
    write(tmp_path, "ok.md")
    deep = tmp_path / "deep"
    deep.mkdir()
    monkeypatch.chdir(deep)  # build past PATH_MAX with relative steps, as a real tree can be
    for _ in range(30):
        os.mkdir("x" * 200)
        os.chdir("x" * 200)
    monkeypatch.chdir(tmp_path)
    found, skipped = run(tmp_path)
    assert found == ["ok.md"]
    assert list(skipped.values()) == ["unreadable: file name too long"]


def test_non_utf8_file_name_is_found_with_a_round_tripping_path(tmp_path):
    raw = os.fsencode(tmp_path) + b"/caf\xe9.md"  # Latin-1 name: not valid UTF-8
    try:
        with open(raw, "wb") as f:
            f.write(b"bonjour\n")
    except OSError:
        pytest.skip("this file system only takes UTF-8 names")
    (entry,) = list(scan(tmp_path))
    assert os.fsencode(entry.path) == raw and entry.rel == "caf\udce9.md"


def test_utf16_with_bom_is_text_not_binary(tmp_path):
    write(tmp_path, "le.txt", "\ufeffhello".encode("utf-16-le"))
    write(tmp_path, "be.txt", "hello".encode("utf-16"))  # BOM + native order
    write(tmp_path, "nul.txt", b"no bom\x00here")
    assert run(tmp_path) == (["be.txt", "le.txt"], {"nul.txt": "binary file"})


def test_fifo_is_reported_not_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.txt")  # opening it would block forever
    assert run(tmp_path) == ([], {"pipe.txt": "not a regular file"})


def test_unreadable_folder(tmp_path, monkeypatch):
    write(tmp_path, "locked/a.md")
    write(tmp_path, "open/b.md")
    real = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(walk.os, "scandir", scandir)
    assert run(tmp_path) == (["open/b.md"], {"locked/": "permission denied"})


def test_unreadable_folder_with_no_search_permission(tmp_path, monkeypatch):
    """What the kernel does for a mode-000 folder: it is listed, but nothing inside can be touched."""
    write(tmp_path, "locked/a.md")
    write(tmp_path, "open/b.md")
    locked = str(tmp_path / "locked")
    real_scandir, real_stat = os.scandir, os.stat

    def deny(real):
        def call(path, *args, **kwargs):
            if str(path).startswith(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "scandir", deny(real_scandir))
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: real_stat(path, *a, **k) if str(path) == locked
                        else deny(real_stat)(path, *a, **k))
    assert run(tmp_path) == (["open/b.md"], {"locked/": "permission denied"})


def test_max_bytes_must_be_positive(tmp_path):
    for bad in (0, -5, 1.5, True):
        with pytest.raises(InputError, match="max_bytes must be a positive"):
            list(scan(tmp_path, max_bytes=bad))


def test_unreadable_file(tmp_path, monkeypatch):
    write(tmp_path, "a.md")
    write(tmp_path, "b.md")

    def deny(path, *args, **kwargs):
        if Path(path).name == "b.md":
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    monkeypatch.setattr(walk, "open", deny, raising=False)  # tests run as root: chmod 000 would not stop us
    assert run(tmp_path) == (["a.md"], {"b.md": "permission denied"})


def test_root_must_be_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        list(scan(tmp_path / "nope"))
    with pytest.raises(InputError):
        list(scan(write(tmp_path, "file.md")))


def test_examples_folder(tmp_path):
    found, skipped = run(EXAMPLES)
    assert skipped == {"scratch/": "ignored by .gitignore"}
    assert "reading/bike-maintenance-checklist.pdf" in found
    assert "garden/index.html" in found and "scripts/backup.sh" in found
    assert 8 <= len(found) <= 12

"""File names as the database stores them, and as people read them.

A POSIX file name is bytes; Python shows the ones that are not valid UTF-8 with lone surrogates
(surrogateescape), which SQLite's TEXT cannot hold. Such a name is stored as a BLOB of its exact
bytes instead, so it comes back byte for byte (`os.fsencode`) and the file can still be opened.
"""

from __future__ import annotations

import os


def to_sql(name: str) -> str | bytes:
    """TEXT for a valid UTF-8 name (almost all of them), else a BLOB of the name's bytes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name)
    return name


def from_sql(value: str | bytes) -> str:
    """Inverse of to_sql."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def sql_bytes(name: str) -> bytes:
    """The bytes SQLite compares for `CAST(column AS BLOB)` of a value stored with to_sql."""
    return os.fsencode(name)


def printable(name: str) -> str:
    """A name safe to print or embed: bytes that are not UTF-8 shown as \\xNN escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

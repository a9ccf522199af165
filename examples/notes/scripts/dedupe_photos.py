#!/usr/bin/env python3
"""Find duplicate photos in a folder tree by content hash and list them.

Usage: dedupe_photos.py ~/Pictures [--delete]
Keeps the oldest copy of each duplicate group; --delete removes the others.
"""

import argparse
import hashlib
import os
import sys
from collections import defaultdict
from pathlib import Path

PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".heic", ".gif", ".webp"}


def file_hash(path: Path, block_size: int = 1 << 20) -> str:
    """SHA-256 of the file contents, read in blocks so large videos fit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def find_duplicates(root: Path) -> dict[str, list[Path]]:
    # Group by size first: files of different size cannot be equal, and
    # stat() is much cheaper than hashing every photo.
    by_size: dict[int, list[Path]] = defaultdict(list)
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.suffix.lower() in PHOTO_EXTS:
                by_size[path.stat().st_size].append(path)

    by_hash: dict[str, list[Path]] = defaultdict(list)
    for paths in by_size.values():
        if len(paths) > 1:
            for path in paths:
                by_hash[file_hash(path)].append(path)
    return {h: ps for h, ps in by_hash.items() if len(ps) > 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--delete", action="store_true", help="remove all but the oldest copy")
    args = parser.parse_args()

    groups = find_duplicates(args.root)
    wasted = 0
    for paths in groups.values():
        paths.sort(key=lambda p: p.stat().st_mtime)
        keep, *extra = paths
        print(f"keep  {keep}")
        for path in extra:
            wasted += path.stat().st_size
            print(f"  dup {path}")
            if args.delete:
                path.unlink()
    print(f"{len(groups)} duplicate groups, {wasted / 1e6:.1f} MB reclaimable", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Text that cannot be tokenized: lone surrogates, which Python uses for bytes that were not valid
UTF-8 (a command-line argument, a file name) and which JSON can spell as "\\udc80"."""

from __future__ import annotations

from mlx_jina.errors import InputError


def check_unicode(text: str, what: str) -> None:
    """InputError naming `what` ("text 3", "the query") and where the first lone surrogate is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{what} is not valid Unicode: a lone surrogate {text[e.start]!r} at character {e.start} "
                         "(text that was not valid UTF-8?)") from None

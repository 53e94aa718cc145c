"""Read a plan or policy file from disk, at most :data:`models.input_file.MAX_BYTES` of it, and parse it.

The size is checked before reading, so a multi-GB file (or ``/dev/zero``) costs nothing; the parsing
and every other cap are :func:`models.input_file.parse_document`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.input_file import MAX_BYTES, InputFileError, parse_document


def read_document(path: str | Path) -> Any:
    """The plain data of the YAML or JSON file at ``path``.

    Raises:
        InputFileError: the file can't be read, is too big, or is not an acceptable document.
    """
    name = str(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputFileError(f"cannot read {name}: {exc.strerror or type(exc).__name__}") from None
    return parse_document(data, name)

"""Header reads of image files that several readers share (a source reader never imports another's)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from dira.errors import InputError


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header alone; InputError naming the file if it is not an image."""
    try:
        with Image.open(path) as image:
            return image.size
    except Exception as err:  # PIL reports unreadable files as OSError, SyntaxError, ValueError...
        raise InputError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None

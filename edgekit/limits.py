"""The limits edgekit puts on what it reads, and the one place to raise them.

Each default serves real edge models with a wide margin and stops a hostile or broken file before it
costs gigabytes or minutes. Over a limit, the input is refused in one line (exit 2) that names the
limit and how to raise it: ``edgekit --limit NAME=VALUE COMMAND ...`` on the command line,
:func:`set_limits` in Python. A bundle's own ``run.py`` carries the input limits (``app.LIMITS``, the
same defaults) and takes the same ``--limit`` flag.

Example:
    >>> limit("image_pixels")
    64000000
    >>> over("image_pixels", "photo.png: 169,000,000 pixels")
    'photo.png: 169,000,000 pixels: the limit is 64,000,000; raise it with --limit image_pixels=N'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One limit: its default and what it bounds."""

    default: int
    what: str


LIMITS: dict[str, Limit] = {
    "image_pixels": Limit(64_000_000, "pixels of an input image, from its header before decoding (48 MP photos fit)"),
    "input_values": Limit(1 << 26, "values of one input tensor, batch included, and of one resized image"),
    "csv_rows": Limit(100_000, "rows of an input CSV file"),
    "labels_bytes": Limit(4 << 20, "bytes of a labels file (ImageNet's 1,001 labels are 21 KB)"),
    "manifest_bytes": Limit(1 << 20, "bytes of a bundle's edgekit.json (a few KB)"),
    "zip_entries": Limit(1000, "entries of a bundle zip (a bundle holds under 10 files)"),
    "unpacked_bytes": Limit(2 << 30, "bytes a bundle zip unpacks to"),
    "zip_ratio": Limit(100, "compression ratio of a zip entry over 1 MiB (weights deflate 1-3x, a bomb 1000x)"),
    "tensor_bytes": Limit(2 << 30, "bytes of one tensor of a model"),
    "activation_bytes": Limit(4 << 30, "bytes of a model's activations, all at once (the runtime's arena)"),
}

# The values in force; a bundle's app shares this dict, so one set_limits call raises both.
VALUES: dict[str, int] = {name: item.default for name, item in LIMITS.items()}


def limit(name: str) -> int:
    """The value of limit ``name`` in force.

    Example:
        >>> limit("zip_entries")
        1000
    """
    return VALUES[name]


def set_limits(**values: int) -> None:
    """Raise (or lower) limits by name; an unknown name or a value below 1 is a ``ValueError``.

    Example:
        >>> set_limits(image_pixels=200_000_000); limit("image_pixels")
        200000000
        >>> set_limits(image_pixels=LIMITS["image_pixels"].default)
    """
    for name, value in values.items():
        if name not in LIMITS:
            raise ValueError(f"no limit named {name!r} (the limits: {', '.join(LIMITS)})")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"limit {name} must be a whole number >= 1, got {value!r}")
    VALUES.update(values)


def parse_limit(text: str) -> tuple[str, int]:
    """``NAME=VALUE`` (VALUE a whole number, ``1e9`` allowed) as a pair; ``ValueError`` names what is wrong.

    Example:
        >>> parse_limit("image_pixels=2e8")
        ('image_pixels', 200000000)
    """
    name, sep, value = text.partition("=")
    if not sep or name not in LIMITS:
        raise ValueError(f"--limit takes NAME=VALUE with NAME one of {', '.join(LIMITS)}; got {text!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--limit {name}: {value!r} is not a number") from None
    if not number.is_integer() or number < 1:
        raise ValueError(f"--limit {name}: {value!r} is not a whole number >= 1")
    return name, int(number)


def over(name: str, found: str) -> str:
    """The one line for an input over limit ``name``: what was found, the limit, the flag that raises it.

    Example:
        >>> over("zip_entries", "bundle.zip: 20000 entries")
        'bundle.zip: 20000 entries: the limit is 1,000; raise it with --limit zip_entries=N'
    """
    return f"{found}: the limit is {VALUES[name]:,}; raise it with --limit {name}=N"

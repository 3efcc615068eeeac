"""Small, dependency-free text utilities."""

from textkit.case import split_words, to_camel, to_kebab, to_pascal, to_snake
from textkit.escape import escape_markdown
from textkit.slug import slugify
from textkit.table import render_table
from textkit.truncate import truncate
from textkit.width import char_width, display_width

__all__ = [
    "char_width",
    "display_width",
    "escape_markdown",
    "render_table",
    "slugify",
    "split_words",
    "to_camel",
    "to_kebab",
    "to_pascal",
    "to_snake",
    "truncate",
]

__version__ = "0.1.0"

"""Small phrases in words that several layers write (a model card, a table's row, a caption)."""

from __future__ import annotations


def count_phrase(n: int, noun: str) -> str:
    """ "1 seed", "3 seeds", "1,200 clips": a count with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"

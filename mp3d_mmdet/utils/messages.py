"""Message formatting shared by every error and warning that lists names."""
from typing import Sequence

__all__ = ['format_examples']


def format_examples(names: Sequence[str], count: int = 3) -> str:
    """The first ``count`` names, comma-separated, with ``', ...'`` when there are more.

    Args:
        names: the names, in the order to show.
        count: how many to show.

    Returns:
        e.g. ``'a, b, c, ...'`` for five names and ``count=3``.
    """
    shown = ', '.join(names[:count])
    return shown + (', ...' if len(names) > count else '')

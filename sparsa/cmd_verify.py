"""CLI verbs of this area (filled in by the owning issue)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's verbs to the top-level group."""

"""Widgets the screens share."""

from app.widgets.game_table import GameTable

__all__ = ["GameTable"]

"""The line at the bottom of every screen: transport badge, power state, budget."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class StatusLine(Static):
    """Shows what the app last told it; repaints only when the text changes."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        background: $panel;
        color: $text;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._last: Text | None = None

    def on_mount(self) -> None:
        register = getattr(self.app, "register_status_line", None)
        if register is not None:
            register(self)

    def on_unmount(self) -> None:
        unregister = getattr(self.app, "unregister_status_line", None)
        if unregister is not None:
            unregister(self)

    def show(self, text: Text) -> None:
        """Show ``text`` unless it is already shown (nothing redrawn for nothing)."""
        if self._last is not None and self._last.plain == text.plain:
            return
        self._last = text
        self.update(text)

    @property
    def plain(self) -> str:
        return self._last.plain if self._last is not None else ""

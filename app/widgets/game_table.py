"""A games table that stays smooth with thousands of games and live odds.

`GameTable` draws only the lines on screen, through Textual's Line API: each
line is a `Strip` built from the game it shows and kept in a small cache keyed
by the game's version, so an odds change re-renders one line and a change off
screen re-renders nothing. The standard `DataTable` recomputes far more on
every cell update; `bench/bench_game_table.py` measures both.

The table keeps its own copy of the games it was given. Callers push changes
with `update_games(games, changed)`, and narrow what is shown with
`set_query`, `set_filter` and `set_sort`. Choosing a game (Enter or a click)
posts `GameTable.GameChosen`.

Kickoff countdowns are computed when a line is drawn; the table runs no
timers, so an idle table writes nothing to the terminal.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from app.format import countdown
from bettensor_core.protocol import Game

SortKey = Literal["kickoff", "odds"]

# How an odds value moved last time it changed: up, down, or not at all.
UP = 1
DOWN = -1
FLAT = 0

_ARROWS = {UP: "▲", DOWN: "▼", FLAT: " "}

# Up to this many games moving in one update are placed one by one; more
# than that, and filtering and sorting everything again is cheaper.
_PLACE_ONE_BY_ONE = 64


@dataclass(frozen=True, slots=True)
class _Layout:
    """Which columns fit in a given width, and how wide each one is.

    Text columns include one blank cell on their right; an odds column is the
    price right-aligned, then its arrow.
    """

    width: int
    mark: int
    sport: int
    league: int
    teams: int
    kickoff: int
    odds: int
    long_kickoff: bool


def _layout_for(width: int) -> _Layout:
    """Choose the columns by the table's own width; teams take what is left."""
    if width >= 90:
        mark, sport, league, kickoff, odds, long_kickoff = 2, 11, 14, 16, 7, True
    elif width >= 72:
        mark, sport, league, kickoff, odds, long_kickoff = 2, 0, 12, 16, 7, True
    elif width >= 60:
        mark, sport, league, kickoff, odds, long_kickoff = 2, 0, 0, 16, 7, True
    else:
        mark, sport, league, kickoff, odds, long_kickoff = 1, 0, 0, 6, 6, False
    teams = max(4, width - mark - sport - league - kickoff - 3 * odds)
    return _Layout(width, mark, sport, league, teams, kickoff, odds, long_kickoff)


def _fit(text: str, width: int, *, right: bool = False) -> str:
    """Pad or cut ``text`` to exactly ``width`` cells, with an ellipsis if cut."""
    if width <= 0:
        return ""
    length = cell_len(text)
    if length > width:
        return set_cell_size(text, width - 1) + "…"
    if right:
        return " " * (width - length) + text
    return text + " " * (width - length)


def _column(text: str, width: int) -> str:
    """A text column: the text cut to leave one blank cell before the next."""
    if width <= 0:
        return ""
    return _fit(text, width - 1) + " "


def _time_left(game: Game, now: float) -> str:
    """A compact countdown to kickoff ("12m", "2h05") or the game's state."""
    if game.status == "live":
        return "live"
    if game.status == "final":
        return "final"
    left = countdown(game.kickoff - now)
    return "now" if left == "started" else left


def _format_odds(value: float | None) -> str:
    """Decimal odds in at most five cells: 1.85, 12.50, 150.0, 1200."""
    if value is None:
        return "-"
    if value < 100:
        return f"{value:.2f}"
    if value < 1000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _move(old: float | None, new: float | None, last: int) -> int:
    """The direction of an odds change, keeping the last one when nothing moved."""
    if old is None or new is None or old == new:
        return last
    return UP if new > old else DOWN


class GameTable(ScrollView, can_focus=True):
    """A scrolling table of games that renders only the visible lines.

    Columns, widest first: a predicted mark, sport, league, teams, kickoff
    (local time and a countdown), and the odds for team A, a tie and team B,
    each with an arrow showing its last move. Narrow tables drop sport, then
    league, then the local kickoff time.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Predict", id="game_table.choose"),
        Binding("up", "cursor_up", "Up", show=False, id="game_table.up"),
        Binding("down", "cursor_down", "Down", show=False, id="game_table.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="game_table.page_up"),
        Binding(
            "pagedown", "page_down", "Page down", show=False, id="game_table.page_down"
        ),
        Binding("home", "first", "First game", show=False, id="game_table.first"),
        Binding("end", "last", "Last game", show=False, id="game_table.last"),
    ]
    """
    | Key | Description |
    | :- | :- |
    | enter | Choose the game under the cursor (posts `GameChosen`). |
    | up / down | Move the cursor one game. |
    | pageup / pagedown | Move the cursor one screen. |
    | home / end | Jump to the first / last game. |
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "game-table--header",
        "game-table--cursor",
        "game-table--up",
        "game-table--down",
        "game-table--predicted",
        "game-table--muted",
        "game-table--live",
    }

    DEFAULT_CSS = """
    GameTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        & > .game-table--header {
            color: $text-muted;
            text-style: bold;
        }
        & > .game-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .game-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .game-table--up {
            color: $text-success;
        }
        & > .game-table--down {
            color: $text-error;
        }
        & > .game-table--predicted {
            color: $text-accent;
            text-style: bold;
        }
        & > .game-table--muted {
            color: $text-muted;
        }
        & > .game-table--live {
            color: $text-warning;
            text-style: bold;
        }
    }
    """

    class GameChosen(Message):
        """The user chose a game (Enter or a click) to predict on."""

        def __init__(self, game_id: str) -> None:
            super().__init__()
            self.game_id = game_id

    class GameHighlighted(Message):
        """The cursor moved to another game (``None`` when no game is shown)."""

        def __init__(self, game_id: str | None) -> None:
            super().__init__()
            self.game_id = game_id

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._clock = clock

        # Every game the table knows, with its version and last odds moves.
        self._games: dict[str, Game] = {}
        self._versions: dict[str, int] = {}
        self._moves: dict[str, tuple[int, int, int]] = {}
        self._haystacks: dict[str, str] = {}
        self._predicted: frozenset[str] = frozenset()

        # What is shown: the filtered, sorted game ids and where each sits.
        self._query = ""
        self._sport: str | None = None
        self._league: str | None = None
        self._status: str | None = None
        self._sort: SortKey = "kickoff"
        self._rows: list[str] = []
        self._row_of: dict[str, int] = {}
        self._cursor_id: str | None = None
        self._cursor_row = 0

        self._line_cache: LRUCache[tuple[object, ...], Strip] = LRUCache(1024)

    # Public API

    @property
    def cursor_game_id(self) -> str | None:
        """The game under the cursor, or ``None`` when no game is shown."""
        return self._cursor_id

    @property
    def shown_game_ids(self) -> list[str]:
        """The ids of the games shown, in display order (a copy)."""
        return list(self._rows)

    def update_games(
        self, games: Mapping[str, Game], changed: Iterable[str] | None = None
    ) -> None:
        """Take new or changed games; ``changed=None`` replaces the whole set.

        Only ``changed`` ids are read from ``games``; an id missing from
        ``games`` is removed. Lines on screen whose game changed are redrawn;
        changes off screen cost no drawing.
        """
        if changed is None:
            self._replace_all(games)
            return

        # Most changes only redraw a line; a few move a game in, out of, or
        # within the list (a new game, a filter match flipped, a sort key moved).
        placed: list[str] = []
        redraw: list[str] = []
        for game_id in dict.fromkeys(changed):
            new = games.get(game_id)
            old = self._games.get(game_id)
            if new is None:
                if old is not None:
                    self._forget(game_id)
                    placed.append(game_id)
                continue
            was_shown = game_id in self._row_of
            self._store(game_id, new, old)
            if old is None or self._placement_changed(game_id, old, was_shown):
                placed.append(game_id)
            else:
                redraw.append(game_id)

        if not placed:
            self._refresh_games(redraw)
        elif len(placed) <= _PLACE_ONE_BY_ONE:
            self._place(placed, redraw)
        else:
            self._reorder(redraw + placed)

    def set_query(self, text: str) -> None:
        """Show only games whose teams, league or sport contain ``text``."""
        query = text.strip().casefold()
        if query != self._query:
            self._query = query
            self._reorder(None)

    def set_filter(
        self,
        sport: str | None = None,
        league: str | None = None,
        status: str | None = None,
    ) -> None:
        """Show only games of this sport, league and status (``None``: any)."""
        wanted = (
            sport.casefold() if sport else None,
            league.casefold() if league else None,
            status.casefold() if status else None,
        )
        if wanted != (self._sport, self._league, self._status):
            self._sport, self._league, self._status = wanted
            self._reorder(None)

    def set_sort(self, key: SortKey) -> None:
        """Sort by ``"kickoff"`` (soonest first) or ``"odds"`` (shortest favourite)."""
        if key not in ("kickoff", "odds"):
            raise ValueError(f"unknown sort key: {key!r}")
        if key != self._sort:
            self._sort = key
            self._reorder(None)

    def set_predicted(self, game_ids: set[str] | frozenset[str]) -> None:
        """Mark the games the miner has already predicted on."""
        predicted = frozenset(game_ids)
        if predicted != self._predicted:
            flipped = predicted ^ self._predicted
            self._predicted = predicted
            self._refresh_games(flipped)

    def move_cursor_to(self, game_id: str) -> bool:
        """Put the cursor on ``game_id`` if it is shown; say whether it was."""
        row = self._row_of.get(game_id)
        if row is None:
            return False
        self._move_cursor(row)
        return True

    # Actions

    def action_choose(self) -> None:
        if self._cursor_id is not None:
            self.post_message(self.GameChosen(self._cursor_id))

    def action_cursor_up(self) -> None:
        self._move_cursor(self._cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self._cursor_row + 1)

    def action_page_up(self) -> None:
        self._move_cursor(self._cursor_row - self._page_height)

    def action_page_down(self) -> None:
        self._move_cursor(self._cursor_row + self._page_height)

    def action_first(self) -> None:
        self._move_cursor(0)

    def action_last(self) -> None:
        self._move_cursor(len(self._rows) - 1)

    # Events

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = offset.y - 1 + round(self.scroll_y)
        if 0 <= row < len(self._rows):
            self._move_cursor(row)
            self.post_message(self.GameChosen(self._rows[row]))

    def _on_resize(self, event: events.Resize) -> None:
        self._update_virtual_size()
        self._line_cache.clear()

    def on_focus(self) -> None:
        self._refresh_row(self._cursor_row)

    def on_blur(self) -> None:
        self._refresh_row(self._cursor_row)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_cache.clear()
        self.refresh()

    # Rendering

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        layout = _layout_for(width)
        if y == 0:
            return self._header_line(layout)
        row = y - 1 + round(self.scroll_y)
        if row >= len(self._rows):
            if row == 0:
                return self._empty_line(width)
            return Strip.blank(width, self.rich_style)
        return self._game_line(self._rows[row], row, layout)

    def _header_line(self, layout: _Layout) -> Strip:
        key = ("header", layout.width, self._sort)
        cached = self._line_cache.get(key)
        if cached is not None:
            return cached

        style = self.rich_style + self.get_component_rich_style("game-table--header")
        kickoff = "kickoff" if layout.long_kickoff else "time"
        sort_mark = {"kickoff": ("↓", ""), "odds": ("", "↓")}[self._sort]
        text = "".join(
            [
                " " * layout.mark,
                _column("sport", layout.sport),
                _column("league", layout.league),
                _column("teams", layout.teams),
                _column(kickoff + sort_mark[0], layout.kickoff),
                _fit("A" + sort_mark[1], layout.odds - 1, right=True) + " ",
                _fit("tie", layout.odds - 1, right=True) + " ",
                _fit("B", layout.odds - 1, right=True) + " ",
            ]
        )
        strip = Strip([Segment(text, style)]).adjust_cell_length(layout.width, style)
        self._line_cache[key] = strip
        return strip

    def _empty_line(self, width: int) -> Strip:
        style = self.rich_style + self.get_component_rich_style("game-table--muted")
        if not self._games:
            text = "  waiting for games…"
        else:
            text = "  no game matches the search or filter"
        return Strip([Segment(_fit(text, width), style)])

    def _game_line(self, game_id: str, row: int, layout: _Layout) -> Strip:
        now = self._clock()
        is_cursor = row == self._cursor_row
        predicted = game_id in self._predicted
        key = (
            game_id,
            self._versions[game_id],
            layout.width,
            is_cursor,
            is_cursor and self.has_focus,
            predicted,
            int(now // 60),
        )
        cached = self._line_cache.get(key)
        if cached is not None:
            return cached

        strip = self._build_line(game_id, layout, now, is_cursor, predicted)
        self._line_cache[key] = strip
        return strip

    def _build_line(
        self,
        game_id: str,
        layout: _Layout,
        now: float,
        is_cursor: bool,
        predicted: bool,
    ) -> Strip:
        game = self._games[game_id]
        component = self.get_component_rich_style
        base = self.rich_style
        if is_cursor:
            base = base + component("game-table--cursor")
        muted = base + component("game-table--muted", partial=True)

        # The kickoff cell: local time and a countdown, or the game's state.
        left = _time_left(game, now)
        if layout.long_kickoff:
            local = time.strftime("%a %H:%M", time.localtime(game.kickoff))
            kickoff_text = f"{local} {left}"
        else:
            kickoff_text = left
        kickoff_style = muted
        if game.status == "live":
            kickoff_style = base + component("game-table--live", partial=True)

        segments = [
            Segment(
                _fit("●" if predicted else "", layout.mark),
                base + component("game-table--predicted", partial=True),
            ),
            Segment(_column(game.sport, layout.sport), muted),
            Segment(_column(game.league, layout.league), muted),
            Segment(_column(f"{game.team_a} v {game.team_b}", layout.teams), base),
            Segment(_column(kickoff_text, layout.kickoff), kickoff_style),
        ]

        # Odds cells: the price, then an arrow coloured by its last move.
        moves = self._moves.get(game_id, (FLAT, FLAT, FLAT))
        arrow_styles = {
            UP: base + component("game-table--up", partial=True),
            DOWN: base + component("game-table--down", partial=True),
            FLAT: base,
        }
        for value, move in zip(
            (game.odds_a, game.odds_tie, game.odds_b), moves, strict=True
        ):
            segments.append(
                Segment(_fit(_format_odds(value), layout.odds - 1, right=True), base)
            )
            segments.append(Segment(_ARROWS[move], arrow_styles[move]))

        strip = Strip(segments).adjust_cell_length(layout.width, base)
        return strip.simplify()

    # Bookkeeping

    def _replace_all(self, games: Mapping[str, Game]) -> None:
        for game_id in [g for g in self._games if g not in games]:
            self._forget(game_id)
        for game_id, game in games.items():
            old = self._games.get(game_id)
            if old is not game:
                self._store(game_id, game, old)
        self._reorder(None)

    def _store(self, game_id: str, new: Game, old: Game | None) -> None:
        self._games[game_id] = new
        self._versions[game_id] = self._versions.get(game_id, 0) + 1
        self._haystacks[game_id] = " ".join(
            (new.team_a, new.team_b, new.league, new.sport)
        ).casefold()
        if old is not None:
            last = self._moves.get(game_id, (FLAT, FLAT, FLAT))
            self._moves[game_id] = (
                _move(old.odds_a, new.odds_a, last[0]),
                _move(old.odds_tie, new.odds_tie, last[1]),
                _move(old.odds_b, new.odds_b, last[2]),
            )

    def _forget(self, game_id: str) -> None:
        self._games.pop(game_id, None)
        self._versions.pop(game_id, None)
        self._moves.pop(game_id, None)
        self._haystacks.pop(game_id, None)

    def _placement_changed(self, game_id: str, old: Game, was_shown: bool) -> bool:
        """Whether a stored change moves the game in, out of, or within the list."""
        if self._matches(game_id) != was_shown:
            return True
        return was_shown and self._sort_key(old) != self._sort_key(self._games[game_id])

    def _sort_key(self, game: Game) -> tuple[float, float, str]:
        if self._sort == "odds":
            return (min(game.odds_a, game.odds_b), game.kickoff, game.game_id)
        return (game.kickoff, 0.0, game.game_id)

    def _matches(self, game_id: str) -> bool:
        game = self._games[game_id]
        if self._sport is not None and game.sport.casefold() != self._sport:
            return False
        if self._league is not None and game.league.casefold() != self._league:
            return False
        if self._status is not None and game.status != self._status:
            return False
        return not self._query or self._query in self._haystacks[game_id]

    def _reorder(self, changed: list[str] | None) -> None:
        """Filter and sort everything again, then redraw what differs on screen.

        ``changed`` lists games whose content changed; ``None`` means the
        view itself changed (query, filter, sort), so every line may differ.
        """
        before = self._visible_ids()
        games = self._games
        shown = [g for g in games if self._matches(g)]
        key = self._sort_key
        shown.sort(key=lambda g: key(games[g]))
        self._rows = shown
        self._row_of = {game_id: row for row, game_id in enumerate(shown)}
        self._after_reorder(before, changed)

    def _place(self, placed: list[str], redraw: list[str]) -> None:
        """Move a few games into, out of, or within the sorted list in place.

        A full `_reorder` costs milliseconds with thousands of games; odds
        arriving one by one while the list is sorted by odds would pay that
        for every change. Here each game is taken out and put back by binary
        search, and only the rows from the first place touched get new positions.
        """
        before = self._visible_ids()
        rows = self._rows
        games = self._games

        def key(game_id: str) -> tuple[float, float, str]:
            return self._sort_key(games[game_id])

        # Take every moving game out first: the binary search below needs the
        # rest of the list sorted by the keys the games have now.
        low = len(rows)
        for game_id in placed:
            if self._row_of.pop(game_id, None) is not None:
                row = rows.index(game_id)  # positions shift within this batch
                del rows[row]
                low = min(low, row)
        for game_id in placed:
            if game_id in games and self._matches(game_id):
                row = bisect.bisect_left(rows, key(game_id), key=key)
                rows.insert(row, game_id)
                low = min(low, row)

        # Rows above the first one touched kept their places.
        for row in range(low, len(rows)):
            self._row_of[rows[row]] = row
        self._after_reorder(before, redraw + placed)

    def _after_reorder(self, before: list[str], changed: list[str] | None) -> None:
        # Keep the cursor on the same game when it is still shown.
        row = self._row_of.get(self._cursor_id) if self._cursor_id else None
        if row is None:
            row = min(self._cursor_row, len(self._rows) - 1)
        self._set_cursor(max(row, 0), scroll=False)
        self._update_virtual_size()

        if changed is None or self._visible_ids() != before:
            self.refresh()
        else:
            self._refresh_games(changed)

    def _visible_ids(self) -> list[str]:
        top = round(self.scroll_y)
        return self._rows[top : top + self._page_height]

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._rows) + 1)

    @property
    def _page_height(self) -> int:
        return max(1, self.size.height - 1)

    def _set_cursor(self, row: int, *, scroll: bool) -> None:
        old_id = self._cursor_id
        old_row = self._cursor_row
        if not self._rows:
            self._cursor_row, self._cursor_id = 0, None
        else:
            self._cursor_row = max(0, min(row, len(self._rows) - 1))
            self._cursor_id = self._rows[self._cursor_row]
        if scroll:
            self._scroll_to_cursor()
        if self._cursor_row != old_row:
            self._refresh_row(old_row)
            self._refresh_row(self._cursor_row)
        if self._cursor_id != old_id:
            self.post_message(self.GameHighlighted(self._cursor_id))

    def _move_cursor(self, row: int) -> None:
        self._set_cursor(row, scroll=True)

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_y)
        page = self._page_height
        if self._cursor_row < top:
            self.scroll_to(y=self._cursor_row, animate=False, immediate=True)
        elif self._cursor_row >= top + page:
            self.scroll_to(y=self._cursor_row - page + 1, animate=False, immediate=True)

    def _refresh_games(self, game_ids: Iterable[str]) -> None:
        for game_id in game_ids:
            row = self._row_of.get(game_id)
            if row is not None:
                self._refresh_row(row)

    def _refresh_row(self, row: int) -> None:
        """Redraw one game's line if it is on screen; do nothing otherwise."""
        y = row - round(self.scroll_y) + 1
        if 1 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

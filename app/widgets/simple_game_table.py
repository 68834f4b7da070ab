"""A plain games table with the `GameTable` API, used until the fast one is present.

It rebuilds a `DataTable` on every change, which is fine for the demo's few
dozen games and far too slow for thousands; `app.widgets.game_table.GameTable`
replaces it whenever that module can be imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable

from app.format import kickoff_text
from bettensor_core.protocol import Game


class SimpleGameTable(Vertical):
    """Games in a `DataTable`: filter, search, sort, a mark for predicted games."""

    DEFAULT_CSS = """
    SimpleGameTable { height: 1fr; }
    SimpleGameTable > DataTable { height: 1fr; }
    """

    class GameChosen(Message):
        """The miner chose a game (Enter or click)."""

        def __init__(self, game_id: str) -> None:
            super().__init__()
            self.game_id = game_id

    def __init__(
        self, *, id: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._games: dict[str, Game] = {}
        self._moves: dict[str, tuple[int, int, int]] = {}
        self._query = ""
        self._filter: tuple[str | None, str | None, str | None] = (None, None, None)
        self._sort = "kickoff"
        self._predicted: set[str] = set()

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(cursor_type="row", zebra_stripes=True)
        yield table

    def on_mount(self) -> None:
        self._rebuild()

    @property
    def cursor_game_id(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def update_games(
        self, games: Mapping[str, Game], changed: Iterable[str] | None = None
    ) -> None:
        ids = list(games) if changed is None else list(changed)
        for game_id in ids:
            new = games.get(game_id)
            old = self._games.get(game_id)
            if new is None:
                self._games.pop(game_id, None)
                continue
            if old is not None:
                self._moves[game_id] = _moves(old, new, self._moves.get(game_id))
            self._games[game_id] = new
        if changed is None:
            for gone in set(self._games) - set(games):
                del self._games[gone]
        self._rebuild()

    def set_query(self, text: str) -> None:
        self._query = text.strip().lower()
        self._rebuild()

    def set_filter(
        self,
        sport: str | None = None,
        league: str | None = None,
        status: str | None = None,
    ) -> None:
        self._filter = (sport, league, status)
        self._rebuild()

    def set_sort(self, key: str) -> None:
        self._sort = key
        self._rebuild()

    def set_predicted(self, game_ids: set[str]) -> None:
        self._predicted = set(game_ids)
        self._rebuild()

    def _visible(self) -> list[Game]:
        sport, league, status = self._filter
        shown = []
        for game in self._games.values():
            if sport and game.sport != sport:
                continue
            if league and game.league != league:
                continue
            if status and game.status != status:
                continue
            if self._query:
                words = f"{game.team_a} {game.team_b} {game.league} {game.sport}"
                if self._query not in words.lower():
                    continue
            shown.append(game)
        if self._sort == "odds":
            shown.sort(key=lambda g: (min(g.odds_a, g.odds_b), g.kickoff, g.game_id))
        else:
            shown.sort(key=lambda g: (g.kickoff, g.game_id))
        return shown

    def _rebuild(self) -> None:
        if not self.is_mounted:
            return
        table = self.query_one(DataTable)
        keep = self.cursor_game_id
        table.clear(columns=True)
        narrow = self.size.width and self.size.width < 60
        if narrow:
            table.add_columns("", "Teams", "Kickoff", "A", "B")
        else:
            table.add_columns(
                "", "Sport", "League", "Teams", "Kickoff", "A", "Tie", "B"
            )
        now = self._clock()
        for game in self._visible():
            mark = "●" if game.game_id in self._predicted else " "
            moves = self._moves.get(game.game_id, (0, 0, 0))
            odds_a = _odds(game.odds_a, moves[0])
            odds_b = _odds(game.odds_b, moves[1])
            tie = _odds(game.odds_tie, moves[2]) if game.can_tie else Text("-")
            teams = f"{game.team_a} v {game.team_b}"
            when = (
                kickoff_text(game.kickoff, now)
                if game.status == "scheduled"
                else (game.status)
            )
            if narrow:
                row: tuple[str | Text, ...] = (mark, teams, when, odds_a, odds_b)
            else:
                row = (mark, game.sport, game.league, teams, when, odds_a, tie, odds_b)
            table.add_row(*row, key=game.game_id)
        if keep is not None and keep in {str(k.value) for k in table.rows}:
            table.move_cursor(row=table.get_row_index(keep))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.GameChosen(str(event.row_key.value)))

    def on_resize(self) -> None:
        self._rebuild()


def _sign(new: float | None, old: float | None, last: int) -> int:
    if new is None or old is None or new == old:
        return last
    return 1 if new > old else -1


def _moves(
    old: Game, new: Game, last: tuple[int, int, int] | None
) -> tuple[int, int, int]:
    last = last or (0, 0, 0)
    return (
        _sign(new.odds_a, old.odds_a, last[0]),
        _sign(new.odds_b, old.odds_b, last[1]),
        _sign(new.odds_tie, old.odds_tie, last[2]),
    )


def _odds(value: float | None, move: int) -> Text:
    if value is None:
        return Text("-")
    arrow = {1: " ▲", -1: " ▼"}.get(move, "  ")
    style = {1: "green", -1: "red"}.get(move, "")
    return Text(f"{value:.2f}{arrow}", style=style)

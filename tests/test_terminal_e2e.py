"""The real `bettensor-miner` in a real terminal (tmux), driven by keystrokes.

Each test starts the installed console script in a detached tmux session on
its own tmux socket, with every config, data and log folder in ``tmp_path``,
and reads the screen with ``capture-pane``. Waits poll with a deadline. The
tests are skipped when tmux or the console script is missing.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
MINER = Path(sys.executable).with_name("bettensor-miner")

pytestmark = [
    pytest.mark.skipif(TMUX is None, reason="tmux is not installed (make system-deps)"),
    pytest.mark.skipif(
        not MINER.exists(), reason=f"console script missing: {MINER} (pip install -e .)"
    ),
]

# A table line of a demo game: "Home v Away" then three prices (or "-").
GAME_LINE = re.compile(r"\S.* v \S.*\d+\.\d\d")
START_TIMEOUT = 30.0


@dataclass
class Terminal:
    """One tmux session running the miner app, on a tmux server of our own."""

    socket: str
    session: str

    def tmux(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run(
            [TMUX, "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", self.session, key)
            time.sleep(0.15)

    def wait_for(
        self, check: Callable[[str], bool], what: str, timeout: float = 15.0
    ) -> str:
        """Poll the screen until ``check`` holds; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if check(screen):
                return screen
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}; the screen was:\n{screen}")

    def wait_until_still(self, quiet: float = 2.0, timeout: float = 20.0) -> str:
        """Wait until the screen text stays the same for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last = self.screen()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            screen = self.screen()
            if screen != last:
                last, still_since = screen, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return screen
        pytest.fail(f"the screen never settled; last seen:\n{last}")


@pytest.fixture
def start_miner(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """Start the miner app in tmux at a given size; the tmux server dies after."""
    socket = f"bettensor-e2e-{os.getpid()}-{tmp_path.name}"
    started: list[Terminal] = []

    def start(
        width: int, height: int, *extra: str, term: str = "xterm-256color"
    ) -> Terminal:
        home = tmp_path / f"home-{len(started)}"
        home.mkdir()
        env = {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_STATE_HOME": str(home / "state"),
            "XDG_CACHE_HOME": str(home / "cache"),
            "BETTENSOR_CONFIG": str(home / "miner.toml"),
            "BETTENSOR_LOG_DIR": str(home / "logs"),
            "TERM": term,
        }
        command = [
            "env",
            # The app must ask the terminal its size, not inherit a stale one.
            "-u",
            "COLUMNS",
            "-u",
            "LINES",
            *(f"{k}={v}" for k, v in env.items()),
            str(MINER),
            "--data-dir",
            str(home / "miner-data"),
            "--speed",
            "0",
            *extra,
        ]
        terminal = Terminal(socket, f"miner{len(started)}")
        assert TMUX is not None
        # The pane gets its size first and the app starts in it after, so the
        # app never starts at tmux's default 80x24 and then races a resize.
        size = ["-x", str(width), "-y", str(height)]
        new = ["new-session", "-d", "-s", terminal.session, *size, "sleep 600"]
        subprocess.run([TMUX, "-L", socket, "-f", "/dev/null", *new], check=True)
        terminal.tmux("respawn-pane", "-k", "-t", terminal.session, shlex.join(command))
        started.append(terminal)
        return terminal

    yield start

    if started and TMUX is not None:
        subprocess.run([TMUX, "-L", socket, "kill-server"], timeout=10, check=False)


def has_games(screen: str) -> bool:
    return sum(1 for line in screen.splitlines() if GAME_LINE.search(line)) >= 3


def test_prediction_by_keystrokes_is_accepted(
    start_miner: Callable[..., Terminal],
) -> None:
    """At 120x40 live demo games appear and Enter, 1, a wager, Enter is accepted."""
    term = start_miner(120, 40)
    screen = term.wait_for(has_games, "live demo games", timeout=START_TIMEOUT)
    assert "budget 1,000.00" in screen

    # The cursor starts on the first game: choose it, pick team A, wager 25.
    term.keys("Enter")
    term.wait_for(lambda s: "Wager" in s, "the prediction dialog")
    term.keys("1", "2", "5")
    term.wait_for(lambda s: "975.00" in s, "the dialog's budget preview")
    term.keys("Enter")

    screen = term.wait_for(lambda s: "accepted" in s, "the validator's acceptance")
    assert "budget 975.00 left" in screen
    first_game = next(line for line in screen.splitlines() if GAME_LINE.search(line))
    assert "●" in first_game  # the predicted mark on the game just predicted


def test_small_terminal_shows_games_and_predicts(
    start_miner: Callable[..., Terminal],
) -> None:
    """At 80x24 on a 16-colour terminal, games fit and a prediction goes through."""
    term = start_miner(80, 24, term="xterm")
    screen = term.wait_for(has_games, "live demo games", timeout=START_TIMEOUT)
    lines = screen.splitlines()
    assert len(lines) <= 24
    assert all(len(line) <= 80 for line in lines)

    # TERM=xterm means 16 colours: no 256-colour or true-colour codes reach it.
    styled = term.tmux("capture-pane", "-p", "-e", "-t", term.session)
    assert not re.search(r"[34]8;[25];", styled), "colours beyond 16 were used"
    assert "\x1b[" in styled  # and it is styled, not plain

    term.keys("Enter")
    term.wait_for(lambda s: "Wager" in s, "the prediction dialog")
    term.keys("1", "1", "0")
    term.keys("Enter")
    term.wait_for(lambda s: "990.00" in s, "the budget after an accepted wager")


def test_idle_app_writes_nothing(
    start_miner: Callable[..., Terminal], tmp_path: Path
) -> None:
    """With the demo frozen and nobody typing, the app writes zero bytes."""
    term = start_miner(120, 40)
    term.wait_for(has_games, "live demo games", timeout=START_TIMEOUT)
    term.wait_until_still(quiet=2.0)

    # Record every byte the app writes to its terminal from now on.
    output = tmp_path / "idle-output.bin"
    term.tmux(
        "pipe-pane", "-o", "-t", term.session, f"cat >> {shlex.quote(str(output))}"
    )
    time.sleep(0.5)
    before = output.stat().st_size if output.exists() else 0
    time.sleep(4.0)
    after = output.stat().st_size if output.exists() else 0
    written = output.read_bytes()[before:after] if output.exists() else b""
    assert after - before == 0, (
        f"{after - before} bytes written while idle; first bytes: {written[:400]!r}"
    )

    # The recording works: one keystroke (the cursor moves) writes some bytes.
    term.keys("Down")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and output.stat().st_size == after:
        time.sleep(0.1)
    term.tmux("pipe-pane", "-t", term.session)
    assert output.stat().st_size > after

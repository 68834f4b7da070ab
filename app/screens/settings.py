"""The Settings screen: wallet, hotkey, validators, theme and power; saved to TOML.

Values are checked by `bettensor_core.config.load_config` (the same checks as
flags and environment) before anything is written. The theme and the idle
delay apply at once; wallet and validator changes apply on the next start.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from app.widgets.status_line import StatusLine
from bettensor_core.config import (
    MinerConfig,
    default_config_path,
    load_config,
    save_config,
)
from bettensor_core.errors import ConfigError
from bettensor_core.power import PowerState

if TYPE_CHECKING:
    from app.miner import Changes, MinerApp

FIELDS = [
    ("wallet_path", "Wallet folder", "~/.bittensor/wallets"),
    ("wallet_name", "Wallet name", "default"),
    ("wallet_hotkey", "Hotkey (empty: development hotkey)", ""),
    ("validators", "Validators (URL or URL#SS58, comma-separated; empty: demo)", ""),
    ("idle_after", "Idle after (seconds without input)", "60"),
]

# Per power state: how often to send heartbeats and to repaint pushed changes.
KNOBS = [
    ("heartbeat_interval", "heartbeat every (s)"),
    ("ui_flush_interval", "screen updates every (s)"),
]
POWER_FIELDS = [
    (f"{state.value}-{knob}", f"power.{state.value}.{knob}", f"{state.value}: {label}")
    for state in PowerState
    for knob, label in KNOBS
]


class SettingsScreen(Screen[None]):
    """A form over the config file; ctrl+s saves it, ctrl+r reverts it."""

    CSS_PATH = "settings.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="settings.save"),
        Binding("ctrl+r", "revert", "Revert", id="settings.revert"),
        Binding("escape", "leave_field", "Done", id="settings.leave"),
    ]
    AUTO_FOCUS = None

    @property
    def miner(self) -> MinerApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="form"):
            yield Static("", id="where")
            for key, label, placeholder in FIELDS:
                yield Label(label, classes="field-label")
                yield Input(placeholder=placeholder, id=key, classes="field")
            yield Label("Power policy", classes="heading")
            with Grid(id="power"):
                for field_id, _, label in POWER_FIELDS:
                    with Vertical(classes="knob"):
                        yield Label(label, classes="field-label")
                        yield Input(id=field_id, classes="field")
            yield Label("Theme", classes="field-label")
            yield Select(
                [(name, name) for name in sorted(self.app.available_themes)],
                id="theme",
                allow_blank=False,
                value=self.app.theme,
            )
            yield Static("", id="settings-error")
            with Horizontal(id="settings-buttons"):
                yield Button("Save", variant="primary", id="save")
                yield Button("Revert", id="revert")
        yield StatusLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.miner.apply_cursor_blink(self)
        self.action_revert()

    def apply_changes(self, changes: Changes) -> None:
        if changes.session:
            self.action_revert()

    # --- config ------------------------------------------------------------

    def _path(self) -> Path:
        session = self.miner.session
        if session is not None and session.config_path is not None:
            return Path(session.config_path)
        return default_config_path()

    def _config(self) -> MinerConfig:
        session = self.miner.session
        if session is not None and isinstance(session.config, MinerConfig):
            return session.config
        return MinerConfig()

    def action_leave_field(self) -> None:
        """Leave the field being edited, so the screen keys work again."""
        self.set_focus(None)

    def action_revert(self) -> None:
        config = self._config()
        values: dict[str, Any] = {
            "wallet_path": str(config.wallet_path),
            "wallet_name": config.wallet_name,
            "wallet_hotkey": config.wallet_hotkey or "",
            "validators": ", ".join(
                f"{v.url}#{v.ss58}" if v.ss58 else v.url for v in config.validators
            ),
            "idle_after": f"{config.idle_after:g}",
        }
        for state in PowerState:
            profile = config.power_profiles[state]
            for knob, _ in KNOBS:
                values[f"{state.value}-{knob}"] = f"{getattr(profile, knob):g}"
        for key, value in values.items():
            self.query_one(f"#{key}", Input).value = value
        # The theme is tried on as it is picked; reverting takes it back too.
        if config.theme in self.app.available_themes:
            self.query_one("#theme", Select).value = config.theme
            self.app.theme = config.theme
        self._show_where()
        self.query_one("#settings-error", Static).update("")

    def _show_where(self) -> None:
        # Say where ctrl+s writes, and whether the file exists yet.
        path = self._path()
        note = "" if path.exists() else "  (not written yet; ctrl+s saves)"
        self.query_one("#where", Static).update(f"Config file: {path}{note}")

    def _flags(self) -> dict[str, object]:
        flags: dict[str, object] = {}
        for key, _, _ in FIELDS:
            text = self.query_one(f"#{key}", Input).value.strip()
            if key in ("wallet_hotkey", "validators"):
                flags[key] = text  # empty means: dev hotkey / demo validator
            elif text:
                flags[key] = text
        for field_id, key, _ in POWER_FIELDS:
            text = self.query_one(f"#{field_id}", Input).value.strip()
            if text:
                flags[key] = text
        theme = self.query_one("#theme", Select).value
        if isinstance(theme, str):
            flags["theme"] = theme
        return flags

    def action_save(self) -> None:
        error = self.query_one("#settings-error", Static)
        path = self._path()
        try:
            checked = load_config(self._flags(), env={}, path=path)
        except ConfigError as exc:
            error.update(f"[b]Not saved[/b]: {exc}")
            return
        # Folders come from where this run keeps its data, not the form.
        current = self._config()
        config = dataclasses.replace(
            checked, data_dir=current.data_dir, log_dir=current.log_dir
        )
        try:
            save_config(config, path)
        except OSError as exc:
            error.update(f"[b]Not saved[/b]: {exc}")
            return
        session = self.miner.session
        if session is not None:
            session.config = config
        self.app.theme = config.theme
        self.miner.power.configure(
            profiles=config.power_profiles, idle_after=config.idle_after
        )
        error.update("")
        self._show_where()
        self.notify(
            f"Saved to {path}. Wallet and validator changes apply on the next start.",
            title="Settings",
        )

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#revert")
    def _revert_pressed(self) -> None:
        self.action_revert()

    @on(Select.Changed, "#theme")
    def _theme_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.app.theme = event.value

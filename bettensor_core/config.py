"""Miner configuration: flags over environment over TOML file over defaults.

The file lives at ``platformdirs.user_config_dir("bettensor")/miner.toml``
(see `default_config_path`; ``BETTENSOR_CONFIG`` points elsewhere)::

    wallet_path = "~/.bittensor/wallets"
    wallet_name = "miner"
    wallet_hotkey = "default"
    theme = "textual-dark"
    remember_password = true

    [power]
    idle_after = 60.0

    [power.background]
    heartbeat_interval = 120.0

    [[validators]]
    url = "wss://validator.example:8091"
    ss58 = "5F..."
    name = "main"

Every key has an environment variable (``BETTENSOR_WALLET_NAME``, ...) and
a command line flag (``--wallet-name``); `docs/configuration.md` lists them.
`load_config` checks every value from every layer before returning, and
raises one `ConfigError` naming each bad key, where it came from and what
is expected, so a configuration is either wholly applied or not at all.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from bettensor_core.errors import ConfigError
from bettensor_core.power import (
    DEFAULT_IDLE_AFTER,
    DEFAULT_PROFILES,
    MAX_LONG_POLL_HOLD,
    PowerPolicy,
    PowerProfile,
    PowerState,
)

APP_NAME = "bettensor"
CONFIG_FILE_NAME = "miner.toml"
ENV_PREFIX = "BETTENSOR_"
CONFIG_PATH_ENV = "BETTENSOR_CONFIG"
DEFAULT_WALLET_PATH = "~/.bittensor/wallets"
DEFAULT_WALLET_NAME = "default"
DEFAULT_THEME = "textual-dark"
VALIDATOR_SCHEMES = ("ws", "wss", "http", "https")


@dataclass(frozen=True, slots=True)
class ValidatorConfig:
    """One validator to connect to; ``ss58`` pins its hotkey when given."""

    url: str
    ss58: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.url


def default_config_path() -> Path:
    """``user_config_dir("bettensor")/miner.toml`` for this platform."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / (
        CONFIG_FILE_NAME
    )


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True, slots=True)
class MinerConfig:
    """Everything the miner is told from outside, already checked.

    An empty ``validators`` list means: start the embedded demo validator.
    ``wallet_hotkey`` None means: use the local development hotkey.
    ``power_profiles`` always holds all three states (defaults merged with
    any overrides).
    """

    validators: list[ValidatorConfig] = field(default_factory=list)
    wallet_path: Path = field(
        default_factory=lambda: Path(DEFAULT_WALLET_PATH).expanduser()
    )
    wallet_name: str = DEFAULT_WALLET_NAME
    wallet_hotkey: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    log_dir: Path = field(default_factory=default_log_dir)
    theme: str = DEFAULT_THEME
    idle_after: float = DEFAULT_IDLE_AFTER
    power_profiles: Mapping[PowerState, PowerProfile] = field(
        default_factory=lambda: DEFAULT_PROFILES
    )
    remember_password: bool = False

    @property
    def demo(self) -> bool:
        """True when no validator is configured: the embedded stub is used."""
        return not self.validators

    @property
    def uses_dev_hotkey(self) -> bool:
        return self.wallet_hotkey is None

    def power_policy(self, clock: Callable[[], float] = time.monotonic) -> PowerPolicy:
        """A fresh `PowerPolicy` with these profiles and idle delay."""
        return PowerPolicy(
            profiles=self.power_profiles, idle_after=self.idle_after, clock=clock
        )


# -- the keys -------------------------------------------------------------------


# The wallet flags are spelled as btcli spells them, which miners know.
_BTCLI_FLAGS = {
    "validators": "--validator",
    "wallet_path": "--wallet.path",
    "wallet_name": "--wallet.name",
    "wallet_hotkey": "--wallet.hotkey",
}


class _Bad(ValueError):
    """A value could not be parsed; the text says what was wrong with it."""


@dataclass(frozen=True, slots=True)
class _Key:
    """One configuration key: its names in each layer and how to read it."""

    name: str  # dotted, as in the file: "power.active.heartbeat_interval"
    parse: Callable[[object], object]
    expected: str

    @property
    def short(self) -> str:
        # "power.idle_after" is known as plain "idle_after" outside the file.
        return "idle_after" if self.name == "power.idle_after" else self.name

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.short.replace(".", "_").upper()

    @property
    def flag(self) -> str:
        if self.name in _BTCLI_FLAGS:
            return _BTCLI_FLAGS[self.name]
        return "--" + self.short.replace(".", "-").replace("_", "-")


def _text(value: object) -> str:
    if isinstance(value, Path):
        return str(value)
    if not isinstance(value, str):
        raise _Bad(f"{value!r} is not text")
    return value.strip()


def _parse_name(value: object) -> str:
    text = _text(value)
    if not text:
        raise _Bad("it is empty")
    if "/" in text or "\\" in text or text in (".", ".."):
        raise _Bad(f"{text!r} is a path, not a name")
    return text


def _parse_hotkey(value: object) -> str | None:
    if value is None:
        return None
    text = _text(value)
    return _parse_name(text) if text else None


def _parse_path(value: object) -> Path:
    text = _text(value)
    if not text:
        raise _Bad("it is empty")
    return Path(os.path.expandvars(text)).expanduser()


def _parse_theme(value: object) -> str:
    text = _text(value)
    if not text:
        raise _Bad("it is empty")
    return text


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Bad(f"{value!r} is not true or false")


def _seconds(
    low: float, high: float, *, low_open: bool = False
) -> Callable[[object], object]:
    def parse(value: object) -> float:
        if isinstance(value, bool):
            raise _Bad(f"{value!r} is not a number")
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _Bad(f"{value.strip()!r} is not a number") from None
        else:
            raise _Bad(f"{value!r} is not a number")
        if not math.isfinite(number):
            raise _Bad(f"{number!r} is not a finite number")
        if number < low or (low_open and number == low) or number > high:
            raise _Bad(f"{number:g} is out of range")
        return number

    return parse


def _parse_validators(value: object) -> list[ValidatorConfig]:
    # A comma list "URL, URL#SS58" (env, flags) or a list of URLs, tables
    # or ValidatorConfig (file, flags).
    if isinstance(value, str):
        items: list[object] = [
            part.strip() for part in value.split(",") if part.strip()
        ]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise _Bad(f"{value!r} is not a list of validators")

    validators: list[ValidatorConfig] = []
    seen: set[str] = set()
    for position, item in enumerate(items, 1):
        validator = _parse_one_validator(item, position)
        if validator.url in seen:
            raise _Bad(f"{validator.url} is listed twice")
        seen.add(validator.url)
        validators.append(validator)
    return validators


def _parse_one_validator(item: object, position: int) -> ValidatorConfig:
    where = f"validator {position}"
    url: object
    ss58: object
    name: object
    if isinstance(item, ValidatorConfig):
        url, ss58, name = item.url, item.ss58, item.name
    elif isinstance(item, str):
        url, _, pin = item.strip().partition("#")
        ss58, name = (pin.strip() or None), None
    elif isinstance(item, Mapping):
        unknown = set(item) - {"url", "ss58", "name"}
        if unknown:
            raise _Bad(f"{where} has unknown keys {', '.join(sorted(unknown))}")
        url = item.get("url")
        ss58 = item.get("ss58")
        name = item.get("name")
        if not isinstance(url, str):
            raise _Bad(f"{where} has no url")
        if ss58 is not None and not isinstance(ss58, str):
            raise _Bad(f"{where}: ss58 {ss58!r} is not text")
        if name is not None and not isinstance(name, str):
            raise _Bad(f"{where}: name {name!r} is not text")
    else:
        raise _Bad(f"{where} ({item!r}) is not a URL or a table")
    assert isinstance(url, str)
    assert ss58 is None or isinstance(ss58, str)
    assert name is None or isinstance(name, str)

    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in VALIDATOR_SCHEMES or not parts.hostname:
        raise _Bad(
            f"{where} URL {url!r} is not a ws://, wss://, http:// or https:// URL"
        )
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _Bad(f"{where} URL {url!r} has a bad port") from None
    if ss58 is not None:
        ss58 = ss58.strip() or None
    if ss58 is not None and not _is_ss58(ss58):
        raise _Bad(f"{where} hotkey {ss58!r} is not an ss58 address")
    return ValidatorConfig(url=url, ss58=ss58, name=(name or "").strip() or None)


def _is_ss58(text: str) -> bool:
    from bittensor_wallet.utils import is_valid_ss58_address

    try:
        return bool(is_valid_ss58_address(text))
    except Exception:
        return False


_HEARTBEAT_RANGE = (1.0, 3600.0)
_FLUSH_RANGE = (0.01, 60.0)

_KEYS: dict[str, _Key] = {}


def _add(name: str, parse: Callable[[object], object], expected: str) -> None:
    _KEYS[name] = _Key(name, parse, expected)


_add(
    "validators",
    _parse_validators,
    "validator URLs (ws://, wss://, http:// or https://), comma-separated, "
    "each optionally followed by #SS58 to pin the validator's hotkey",
)
_add("wallet_path", _parse_path, "the folder holding your wallets")
_add("wallet_name", _parse_name, "a wallet name (a folder under wallet_path)")
_add(
    "wallet_hotkey",
    _parse_hotkey,
    "a hotkey name (a file under WALLET/hotkeys), or empty for the dev hotkey",
)
_add("data_dir", _parse_path, "a folder for the miner's data")
_add("log_dir", _parse_path, "a folder for the log files")
_add("theme", _parse_theme, "the name of a Textual theme")
_add("remember_password", _parse_bool, "true or false")
_add(
    "power.idle_after",
    _seconds(1.0, 86400.0),
    "a number of seconds from 1 to 86400",
)
for _state in PowerState:
    _add(
        f"power.{_state.value}.heartbeat_interval",
        _seconds(*_HEARTBEAT_RANGE),
        "a number of seconds from 1 to 3600",
    )
    _add(
        f"power.{_state.value}.long_poll_hold",
        _seconds(0.0, MAX_LONG_POLL_HOLD, low_open=True),
        f"a number of seconds above 0 and at most {MAX_LONG_POLL_HOLD:g}",
    )
    _add(
        f"power.{_state.value}.ui_flush_interval",
        _seconds(*_FLUSH_RANGE),
        "a number of seconds from 0.01 to 60",
    )

# Flags may use the short field names of MinerConfig as well.
_FLAG_ALIASES = {"idle_after": "power.idle_after"}


def config_keys() -> list[str]:
    """Every key, dotted as in the file (for docs, help and the settings screen)."""
    return list(_KEYS)


def env_name(key: str) -> str:
    """The environment variable of a key, e.g. ``BETTENSOR_WALLET_NAME``."""
    return _KEYS[key].env


# -- loading --------------------------------------------------------------------


@dataclass(slots=True)
class _Raw:
    value: object
    source: str


def load_config(
    flags: Mapping[str, object] | None = None,
    env: Mapping[str, str] = os.environ,
    path: str | Path | None = None,
) -> MinerConfig:
    """Read the file, the environment and the flags, and check everything.

    ``flags`` maps keys (``"wallet_name"``, ``"power.idle_after"`` or its
    short form ``"idle_after"``) to values; None values mean "not given".
    ``path`` defaults to ``$BETTENSOR_CONFIG`` or `default_config_path`; a
    missing file is fine (defaults apply).

    Raises:
        ConfigError: naming each bad key, its source and what is expected.
    """
    if path is None:
        from_env = env.get(CONFIG_PATH_ENV, "").strip()
        path = Path(from_env).expanduser() if from_env else default_config_path()
    path = Path(path)

    # Lowest layer first; later layers replace earlier ones key by key.
    layers: dict[str, _Raw] = {}
    problems: list[tuple[str, str, str]] = []
    layers.update(_file_layer(path, problems))
    layers.update(_env_layer(env))
    layers.update(_flag_layer(flags or {}, problems))

    values: dict[str, object] = {}
    for name, raw in layers.items():
        key = _KEYS[name]
        try:
            values[name] = key.parse(raw.value)
        except _Bad as exc:
            problems.append((name, raw.source, f"{exc}; expected {key.expected}"))
    if problems:
        raise _config_error(problems)
    return _build(values)


def _config_error(problems: list[tuple[str, str, str]]) -> ConfigError:
    # A problem with the whole file has no key: "FILE is not valid TOML".
    lines = [
        f"{name} ({source}): {what}" if name else f"{source} {what}"
        for name, source, what in problems
    ]
    if len(lines) == 1:
        message = f"Bad configuration value: {lines[0]}."
    else:
        message = "Bad configuration values:\n" + "\n".join(
            f"- {line}" for line in lines
        )
    name, source, _ = problems[0]
    return ConfigError(message, key=name or None, source=source)


def _build(values: Mapping[str, object]) -> MinerConfig:
    profiles = dict(DEFAULT_PROFILES)
    for state in PowerState:
        base = profiles[state]
        knobs = {
            knob: values.get(f"power.{state.value}.{knob}", getattr(base, knob))
            for knob in ("heartbeat_interval", "long_poll_hold", "ui_flush_interval")
        }
        profiles[state] = PowerProfile(**knobs)  # type: ignore[arg-type]

    kwargs: dict[str, Any] = {
        name: values[name]
        for name in (
            "validators",
            "wallet_path",
            "wallet_name",
            "wallet_hotkey",
            "data_dir",
            "log_dir",
            "theme",
            "remember_password",
        )
        if name in values
    }
    if "power.idle_after" in values:
        kwargs["idle_after"] = values["power.idle_after"]
    return MinerConfig(power_profiles=MappingProxyType(profiles), **kwargs)


def _env_layer(env: Mapping[str, str]) -> dict[str, _Raw]:
    layer: dict[str, _Raw] = {}
    for name, key in _KEYS.items():
        if key.env in env:
            layer[name] = _Raw(env[key.env], f"environment variable {key.env}")
    return layer


def _flag_layer(
    flags: Mapping[str, object], problems: list[tuple[str, str, str]]
) -> dict[str, _Raw]:
    layer: dict[str, _Raw] = {}
    for given, value in flags.items():
        if value is None:
            continue
        name = _FLAG_ALIASES.get(given, given)
        key = _KEYS.get(name)
        if key is None:
            problems.append((given, f"flag {given}", "unknown setting"))
            continue
        layer[name] = _Raw(value, f"flag {key.flag}")
    return layer


def _file_layer(path: Path, problems: list[tuple[str, str, str]]) -> dict[str, _Raw]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        problems.append(("", str(path), f"cannot be read: {reason}"))
        return {}
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(("", str(path), f"is not valid TOML: {exc}"))
        return {}

    layer: dict[str, _Raw] = {}

    def where(key: str, table: str = "", index: int | None = None) -> str:
        line = _line_of(text, table, key, index)
        return f"{path} line {line}" if line else str(path)

    for key, value in document.items():
        if key == "power" and isinstance(value, dict):
            _read_power_table(value, where, layer, problems)
        elif key == "validators":
            tables = (
                isinstance(value, list)
                and value
                and all(isinstance(item, dict) for item in value)
            )
            source = where("url", "validators", 0) if tables else where(key)
            layer["validators"] = _Raw(value, source)
        elif key in _KEYS and key != "power.idle_after":
            layer[key] = _Raw(value, where(key))
        else:
            problems.append(
                (key, where(key), f"unknown setting; known ones: {_known()}")
            )
    return layer


def _read_power_table(
    table: Mapping[str, object],
    where: Callable[..., str],
    layer: dict[str, _Raw],
    problems: list[tuple[str, str, str]],
) -> None:
    states = {state.value for state in PowerState}
    for key, value in table.items():
        if key == "idle_after":
            layer["power.idle_after"] = _Raw(value, where(key, "power"))
        elif key in states and isinstance(value, dict):
            for knob, number in value.items():
                name = f"power.{key}.{knob}"
                if name in _KEYS:
                    layer[name] = _Raw(number, where(knob, f"power.{key}"))
                else:
                    problems.append(
                        (
                            name,
                            where(knob, f"power.{key}"),
                            "unknown power setting; "
                            "known ones: heartbeat_interval, long_poll_hold, "
                            "ui_flush_interval",
                        )
                    )
        else:
            problems.append(
                (
                    f"power.{key}",
                    where(key, "power"),
                    "unknown power setting; known "
                    "ones: idle_after and the tables active, idle, background",
                )
            )


def _known() -> str:
    top = [name for name in _KEYS if not name.startswith("power.")]
    return ", ".join([*top, "[power]"])


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _line_of(text: str, table: str, key: str, index: int | None = None) -> int | None:
    """The 1-based line where ``key`` is set inside ``table``, if it can be found.

    ``index`` picks the n-th ``[[table]]`` of an array of tables. Dotted keys
    and inline tables are rare in this file; for them the line is simply not
    named.
    """
    current = ""
    seen_arrays = -1
    assign = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            current = header.group(2).replace(" ", "").replace('"', "")
            if header.group(1) == "[[" and current == table:
                seen_arrays += 1
            continue
        if current != table or not assign.match(line):
            continue
        if index is None or seen_arrays == index:
            return number
    return None


# -- saving ---------------------------------------------------------------------


def save_config(config: MinerConfig, path: str | Path | None = None) -> Path:
    """Write ``config`` as TOML, keeping only what differs from the defaults.

    The file is replaced atomically, so a crash never leaves half a file.
    Returns the path written.
    """
    path = Path(path) if path is not None else default_config_path()
    text = dump_config(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".miner-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return path


def dump_config(config: MinerConfig) -> str:
    """The TOML text `save_config` writes."""
    default = MinerConfig()
    lines = [
        "# Bettensor miner configuration; docs/configuration.md lists every key.",
        "",
    ]
    for name in ("wallet_path", "wallet_name", "wallet_hotkey", "data_dir", "log_dir"):
        value = getattr(config, name)
        if value is not None and value != getattr(default, name):
            lines.append(f"{name} = {_toml_value(str(value))}")
    if config.theme != default.theme:
        lines.append(f"theme = {_toml_value(config.theme)}")
    if config.remember_password != default.remember_password:
        lines.append(f"remember_password = {_toml_value(config.remember_password)}")

    power: list[str] = []
    if config.idle_after != default.idle_after:
        power.append(f"idle_after = {_toml_value(config.idle_after)}")
    tables: list[str] = []
    for state in PowerState:
        mine = config.power_profiles[state]
        base = DEFAULT_PROFILES[state]
        changed = [
            f"{knob} = {_toml_value(getattr(mine, knob))}"
            for knob in ("heartbeat_interval", "long_poll_hold", "ui_flush_interval")
            if getattr(mine, knob) != getattr(base, knob)
        ]
        if changed:
            tables += ["", f"[power.{state.value}]", *changed]
    if power or tables:
        lines += ["", "[power]", *power, *tables]

    for validator in config.validators:
        lines += ["", "[[validators]]", f"url = {_toml_value(validator.url)}"]
        if validator.ss58:
            lines.append(f"ss58 = {_toml_value(validator.ss58)}")
        if validator.name:
            lines.append(f"name = {_toml_value(validator.name)}")
    return "\n".join(lines) + "\n"


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _toml_value(value: str | float | bool) -> str:
    """One TOML scalar: a basic string, a boolean or a float."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{number!r} cannot be written to the config file")
        return repr(number)
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'

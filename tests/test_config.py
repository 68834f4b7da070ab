"""Configuration: layering, checking, error messages and the TOML round trip."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bettensor_core.config import (
    MinerConfig,
    ValidatorConfig,
    config_keys,
    default_config_path,
    dump_config,
    env_name,
    load_config,
    save_config,
)
from bettensor_core.errors import ConfigError
from bettensor_core.power import DEFAULT_PROFILES, PowerProfile, PowerState

VALIDATOR_SS58 = "5DDFQACqNnYAVdAaKnED1v1xYHEGqGhAza8v6FHsTBUoztL6"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_env_or_flags(tmp_path: Path) -> None:
    """With nothing configured the miner runs the demo with the dev hotkey."""
    config = load_config(env={}, path=tmp_path / "missing.toml")
    assert config == MinerConfig()
    assert config.demo and config.uses_dev_hotkey
    assert config.validators == []
    assert config.idle_after == 60.0
    assert config.power_profiles == DEFAULT_PROFILES
    assert config.wallet_path == Path("~/.bittensor/wallets").expanduser()


def test_default_path_is_in_the_user_config_dir() -> None:
    """The file is miner.toml inside a bettensor config folder."""
    path = default_config_path()
    assert path.name == "miner.toml"
    assert "bettensor" in path.parent.parts[-1]


def test_file_values_are_read(tmp_path: Path) -> None:
    """Every kind of value in the file arrives checked and typed."""
    path = write(
        tmp_path / "miner.toml",
        f"""
wallet_path = "{tmp_path}/wallets"
wallet_name = "miner"
wallet_hotkey = "hot1"
data_dir = "{tmp_path}/data"
log_dir = "{tmp_path}/logs"
theme = "nord"
remember_password = true

[power]
idle_after = 120

[power.background]
heartbeat_interval = 180.5

[[validators]]
url = "wss://validator.example:8091/"
ss58 = "{VALIDATOR_SS58}"
name = "main"

[[validators]]
url = "http://127.0.0.1:8092"
""",
    )
    config = load_config(env={}, path=path)
    assert config.wallet_path == tmp_path / "wallets"
    assert (config.wallet_name, config.wallet_hotkey) == ("miner", "hot1")
    assert config.data_dir == tmp_path / "data"
    assert config.log_dir == tmp_path / "logs"
    assert config.theme == "nord"
    assert config.remember_password is True
    assert config.idle_after == 120.0
    background = config.power_profiles[PowerState.BACKGROUND]
    assert background.heartbeat_interval == 180.5
    assert background.ui_flush_interval == 2.0
    assert config.power_profiles[PowerState.ACTIVE] == DEFAULT_PROFILES["active"]
    assert config.validators == [
        ValidatorConfig("wss://validator.example:8091", VALIDATOR_SS58, "main"),
        ValidatorConfig("http://127.0.0.1:8092"),
    ]
    assert not config.demo and not config.uses_dev_hotkey


def test_env_beats_file_and_flags_beat_env(tmp_path: Path) -> None:
    """Each layer overrides the one below it, key by key."""
    path = write(
        tmp_path / "miner.toml",
        'wallet_name = "from-file"\ntheme = "file-theme"\nwallet_hotkey = "f"\n',
    )
    env = {
        "BETTENSOR_WALLET_NAME": "from-env",
        "BETTENSOR_THEME": "env-theme",
        "BETTENSOR_VALIDATORS": "ws://127.0.0.1:1, ws://127.0.0.1:2#" + VALIDATOR_SS58,
        "BETTENSOR_IDLE_AFTER": "30",
        "BETTENSOR_REMEMBER_PASSWORD": "yes",
    }
    flags = {"theme": "flag-theme", "idle_after": 45, "wallet_name": None}
    config = load_config(flags=flags, env=env, path=path)
    assert config.wallet_name == "from-env"
    assert config.theme == "flag-theme"
    assert config.wallet_hotkey == "f"
    assert config.idle_after == 45.0
    assert config.remember_password is True
    assert config.validators == [
        ValidatorConfig("ws://127.0.0.1:1"),
        ValidatorConfig("ws://127.0.0.1:2", VALIDATOR_SS58),
    ]


def test_empty_env_values_mean_demo_and_dev_hotkey(tmp_path: Path) -> None:
    """An empty BETTENSOR_VALIDATORS or BETTENSOR_WALLET_HOTKEY clears the file's."""
    path = write(
        tmp_path / "miner.toml",
        'wallet_hotkey = "hot"\n[[validators]]\nurl = "ws://127.0.0.1:9"\n',
    )
    env = {"BETTENSOR_VALIDATORS": "", "BETTENSOR_WALLET_HOTKEY": ""}
    config = load_config(env=env, path=path)
    assert config.demo and config.uses_dev_hotkey


def test_flags_accept_typed_values(tmp_path: Path) -> None:
    """Flags may carry Paths, bools, numbers and ValidatorConfig objects."""
    flags = {
        "data_dir": tmp_path / "d",
        "remember_password": False,
        "validators": [ValidatorConfig("https://127.0.0.1:8091", name="local")],
        "power.idle.long_poll_hold": 10,
    }
    config = load_config(flags=flags, env={}, path=tmp_path / "none.toml")
    assert config.data_dir == tmp_path / "d"
    assert config.validators[0].label == "local"
    assert config.power_profiles[PowerState.IDLE].long_poll_hold == 10.0


def test_config_path_from_env(tmp_path: Path) -> None:
    """BETTENSOR_CONFIG points load_config at another file."""
    path = write(tmp_path / "other.toml", 'theme = "elsewhere"\n')
    config = load_config(env={"BETTENSOR_CONFIG": str(path)})
    assert config.theme == "elsewhere"


def test_bad_env_value_names_key_source_and_expectation(tmp_path: Path) -> None:
    """A bad environment value is reported with its variable and what is expected."""
    with pytest.raises(ConfigError) as caught:
        load_config(env={"BETTENSOR_IDLE_AFTER": "soon"}, path=tmp_path / "x.toml")
    error = caught.value
    assert error.key == "power.idle_after"
    assert error.source == "environment variable BETTENSOR_IDLE_AFTER"
    assert "'soon' is not a number" in str(error)
    assert "expected a number of seconds" in str(error)


def test_bad_file_value_names_the_line(tmp_path: Path) -> None:
    """A bad value in the file is reported with the file and its line number."""
    path = write(
        tmp_path / "miner.toml",
        'theme = "x"\n\n[power]\nidle_after = 5\n\n[power.active]\n'
        "long_poll_hold = 40\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, path=path)
    assert caught.value.key == "power.active.long_poll_hold"
    assert caught.value.source == f"{path} line 7"
    assert "at most 25" in str(caught.value)


def test_bad_validator_pin_names_the_file_line(tmp_path: Path) -> None:
    """A bad ss58 pin in the file is refused with an explanation."""
    path = write(
        tmp_path / "miner.toml",
        '[[validators]]\nurl = "ws://127.0.0.1:1"\nss58 = "5notanaddress"\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, path=path)
    assert "is not an ss58 address" in str(caught.value)
    assert caught.value.source == f"{path} line 2"


@pytest.mark.parametrize(
    ("env", "key", "fragment"),
    [
        ({"BETTENSOR_VALIDATORS": "ftp://host"}, "validators", "not a ws://"),
        ({"BETTENSOR_VALIDATORS": "ws://"}, "validators", "not a ws://"),
        ({"BETTENSOR_VALIDATORS": "ws://a:99999"}, "validators", "bad port"),
        ({"BETTENSOR_VALIDATORS": "ws://a:1,ws://a:1"}, "validators", "twice"),
        ({"BETTENSOR_WALLET_NAME": "../x"}, "wallet_name", "path, not a name"),
        ({"BETTENSOR_WALLET_NAME": " "}, "wallet_name", "empty"),
        ({"BETTENSOR_REMEMBER_PASSWORD": "maybe"}, "remember_password", "true or"),
        ({"BETTENSOR_IDLE_AFTER": "nan"}, "power.idle_after", "finite"),
        ({"BETTENSOR_IDLE_AFTER": "0"}, "power.idle_after", "out of range"),
        (
            {"BETTENSOR_POWER_ACTIVE_UI_FLUSH_INTERVAL": "-1"},
            "power.active.ui_flush_interval",
            "out of range",
        ),
        (
            {"BETTENSOR_POWER_IDLE_LONG_POLL_HOLD": "0"},
            "power.idle.long_poll_hold",
            "out of range",
        ),
    ],
)
def test_bad_values_are_refused(
    tmp_path: Path, env: dict[str, str], key: str, fragment: str
) -> None:
    """Each kind of bad value raises ConfigError naming the key."""
    with pytest.raises(ConfigError) as caught:
        load_config(env=env, path=tmp_path / "x.toml")
    assert caught.value.key == key
    assert fragment in str(caught.value)


def test_all_problems_reported_together(tmp_path: Path) -> None:
    """Several bad values across layers are listed in one error, nothing applied."""
    path = write(tmp_path / "miner.toml", 'theme = ""\nwalet_name = "typo"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(
            flags={"wallet_hotkey": "a/b"},
            env={"BETTENSOR_IDLE_AFTER": "x"},
            path=path,
        )
    message = str(caught.value)
    assert "theme" in message and f"{path} line 1" in message
    assert "walet_name" in message and "unknown setting" in message
    assert "flag --wallet.hotkey" in message
    assert "BETTENSOR_IDLE_AFTER" in message


def test_unknown_flag_is_refused(tmp_path: Path) -> None:
    """A flag that maps to no key is a ConfigError, not silently ignored."""
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(flags={"colour": "red"}, env={}, path=tmp_path / "x.toml")


def test_broken_toml_is_reported_with_the_path(tmp_path: Path) -> None:
    """A syntax error in the file says which file and where."""
    path = write(tmp_path / "miner.toml", "theme = \n")
    with pytest.raises(ConfigError) as caught:
        load_config(env={}, path=path)
    assert f"{path} is not valid TOML" in str(caught.value)
    assert caught.value.key is None and caught.value.source == str(path)
    assert "line 1" in str(caught.value)


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    """What save_config writes, load_config reads back identically."""
    profiles = dict(DEFAULT_PROFILES)
    profiles[PowerState.IDLE] = PowerProfile(50.0, 20.0, 1.5)
    config = MinerConfig(
        validators=[
            ValidatorConfig("wss://v.example:8091", VALIDATOR_SS58, 'quote " name'),
            ValidatorConfig("ws://127.0.0.1:8091"),
        ],
        wallet_path=tmp_path / "wallets with space",
        wallet_name="miner",
        wallet_hotkey="hk",
        data_dir=tmp_path / "data",
        log_dir=tmp_path / "logs",
        theme="gruvbox",
        idle_after=90.0,
        power_profiles=profiles,
        remember_password=True,
    )
    path = save_config(config, tmp_path / "cfg" / "miner.toml")
    assert path.exists()
    assert load_config(env={}, path=path) == config


def test_saved_file_holds_only_changes(tmp_path: Path) -> None:
    """A default config writes no keys; a change writes just that key."""
    assert tomllib.loads(dump_config(MinerConfig())) == {}
    text = dump_config(MinerConfig(theme="nord"))
    assert tomllib.loads(text) == {"theme": "nord"}


def test_save_replaces_atomically(tmp_path: Path) -> None:
    """Saving over an existing file leaves exactly the new content, no temp files."""
    path = tmp_path / "miner.toml"
    save_config(MinerConfig(theme="one"), path)
    save_config(MinerConfig(theme="two"), path)
    assert load_config(env={}, path=path).theme == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["miner.toml"]


def test_every_key_has_an_env_name() -> None:
    """Each key maps to a BETTENSOR_ variable (the docs table relies on it)."""
    names = {env_name(key) for key in config_keys()}
    assert len(names) == len(config_keys())
    assert "BETTENSOR_VALIDATORS" in names and "BETTENSOR_WALLET_NAME" in names
    assert all(name.startswith("BETTENSOR_") for name in names)


def test_power_policy_from_config(tmp_path: Path) -> None:
    """MinerConfig builds a PowerPolicy with its own profiles and idle delay."""
    config = load_config(
        env={"BETTENSOR_POWER_ACTIVE_HEARTBEAT_INTERVAL": "20"},
        flags={"idle_after": 10},
        path=tmp_path / "x.toml",
    )
    policy = config.power_policy(clock=lambda: 0.0)
    assert policy.profile.heartbeat_interval == 20.0
    assert policy.next_change_at() == 10.0


def test_unreadable_config_file_is_reported(tmp_path: Path) -> None:
    """A config path that cannot be read (here a folder) is a ConfigError."""
    folder = tmp_path / "miner.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(env={}, path=folder)

"""Hotkeys from real wallet files written by bittensor_wallet, and the keyring.

Encrypted hotkeys come in two real formats: the current NaCl one (Argon2,
several seconds per unlock, so only two tests use it) and the legacy Ansible
Vault one that older btcli versions wrote (fast; the keyring tests use it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from bittensor_wallet import Keypair, Wallet
from bittensor_wallet import keyfile as wallet_keyfile
from keyring.backend import KeyringBackend
from keyring.backends import fail

from bettensor_core import codec
from bettensor_core.errors import IdentityError
from bettensor_core.identity import (
    DEV_HOTKEY_NAME,
    DEV_WALLET_NAME,
    KEYRING_SERVICE,
    NO_KEYRING_MESSAGE,
    dev_signer,
    forget_password,
    hotkey_path,
    keyring_status,
    load_signer,
)
from bettensor_core.protocol import Heartbeat

PASSWORD = "correct horse battery 7"


class MemoryKeyring(KeyringBackend):
    """A real keyring backend that keeps passwords in a dict for the test."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


class DeadDbusKeyring(MemoryKeyring):
    """A backend that exists but fails on use, as Secret Service does headless."""

    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown")


class Asker:
    """Stands in for the app's password prompt and counts the calls."""

    def __init__(self, answer: str | None):
        self.answer = answer
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return self.answer


def never_asked() -> str:
    raise AssertionError("the password prompt must not be shown")


def plain_wallet(path: Path, name: str = "miner", hotkey: str = "hot") -> Wallet:
    wallet = Wallet(name=name, hotkey=hotkey, path=str(path))
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return wallet


def legacy_encrypted_hotkey(path: Path, mnemonic: str, password: str) -> Path:
    """Write a hotkey file as older btcli did: Ansible Vault encrypted JSON."""
    keypair = Keypair.create_from_mnemonic(mnemonic)
    data = wallet_keyfile.serialized_keypair_to_keyfile_data(keypair)
    target = hotkey_path(path, "old", "hot")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(
        bytes(wallet_keyfile.legacy_encrypt_keyfile_data(data, password=password))
    )
    return target


@pytest.fixture(scope="module")
def nacl_wallet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A NaCl-encrypted hotkey regenerated from a mnemonic, made once (slow)."""
    path = tmp_path_factory.mktemp("nacl") / "wallets"
    mnemonic = Keypair.generate_mnemonic(12)
    Wallet(name="enc", hotkey="hot", path=str(path)).regenerate_hotkey(
        mnemonic=mnemonic,
        use_password=True,
        hotkey_password=PASSWORD,
        overwrite=True,
        suppress=True,
    )
    return path, Keypair.create_from_mnemonic(mnemonic).ss58_address


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[Path, str]:
    """A legacy-encrypted hotkey at tmp_path/wallets/old/hotkeys/hot."""
    mnemonic = Keypair.generate_mnemonic(12)
    legacy_encrypted_hotkey(tmp_path / "wallets", mnemonic, PASSWORD)
    return tmp_path / "wallets", Keypair.create_from_mnemonic(mnemonic).ss58_address


def signs_for(signer: codec.Signer, ss58: str) -> bool:
    """The signer's messages verify as coming from ``ss58``."""
    message = codec.decode(codec.encode(Heartbeat(n=1), signer))
    return message.sender == ss58 == signer.ss58


# -- unencrypted hotkeys --------------------------------------------------------


def test_loads_a_plain_hotkey_made_by_the_wallet(tmp_path: Path) -> None:
    """An unencrypted hotkey file from bittensor_wallet signs as that hotkey."""
    wallet = plain_wallet(tmp_path / "wallets")
    signer = load_signer(tmp_path / "wallets", "miner", "hot", ask_password=never_asked)
    assert signs_for(signer, wallet.hotkey.ss58_address)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_world_readable_plain_hotkey_is_flagged(tmp_path: Path) -> None:
    """An unencrypted hotkey others can read still loads, with a chmod hint."""
    plain_wallet(tmp_path / "wallets")
    target = hotkey_path(tmp_path / "wallets", "miner", "hot")
    told: list[str] = []
    load_signer(tmp_path / "wallets", "miner", "hot", notify=told.append)
    assert told == []

    target.chmod(0o644)
    load_signer(tmp_path / "wallets", "miner", "hot", notify=told.append)
    assert len(told) == 1 and "chmod 600" in told[0]


def test_loads_a_hotkey_regenerated_from_a_mnemonic(tmp_path: Path) -> None:
    """A hotkey restored from a mnemonic has the mnemonic's address."""
    mnemonic = Keypair.generate_mnemonic(12)
    wallet = Wallet(name="w", hotkey="h", path=str(tmp_path))
    wallet.regenerate_hotkey(
        mnemonic=mnemonic, use_password=False, overwrite=True, suppress=True
    )
    signer = load_signer(str(tmp_path), "w", "h")
    assert signs_for(signer, Keypair.create_from_mnemonic(mnemonic).ss58_address)


def test_tilde_in_wallet_path_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/...`` wallet paths work as they do in btcli."""
    monkeypatch.setenv("HOME", str(tmp_path))
    wallet = plain_wallet(tmp_path / ".bittensor" / "wallets", "default", "default")
    signer = load_signer("~/.bittensor/wallets", "default", "default")
    assert signer.ss58 == wallet.hotkey.ss58_address


def test_missing_hotkey_names_the_path(tmp_path: Path) -> None:
    """A missing file is reported with the full path that was tried."""
    with pytest.raises(IdentityError) as caught:
        load_signer(tmp_path, "nowallet", "nohotkey")
    assert str(tmp_path / "nowallet" / "hotkeys" / "nohotkey") in str(caught.value)
    assert "No hotkey file" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"this is not a key", "damaged"),
        (b'{"accountId": "0x00"}', "damaged"),
        (b"   \n", "empty"),
    ],
)
def test_corrupt_hotkey_file(tmp_path: Path, content: bytes, fragment: str) -> None:
    """Garbage, half a key or an empty file give a plain 'damaged'/'empty' error."""
    target = hotkey_path(tmp_path, "w", "h")
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    with pytest.raises(IdentityError, match=fragment) as caught:
        load_signer(tmp_path, "w", "h")
    assert str(target) in str(caught.value)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    """A folder where the hotkey file should be is named as such."""
    hotkey_path(tmp_path, "w", "h").mkdir(parents=True)
    with pytest.raises(IdentityError, match="is a folder"):
        load_signer(tmp_path, "w", "h")


# -- NaCl-encrypted hotkeys (the current btcli format) --------------------------


@pytest.mark.slow
async def test_nacl_hotkey_unlocks_without_freezing_the_event_loop(
    nacl_wallet: tuple[Path, str],
) -> None:
    """Unlocking takes seconds of Argon2, yet the caller's event loop keeps ticking."""
    path, ss58 = nacl_wallet
    ticks = 0
    done = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.05)

    beating = asyncio.create_task(heartbeat())
    signer = await asyncio.to_thread(load_signer, path, "enc", "hot", password=PASSWORD)
    done.set()
    await beating
    assert signs_for(signer, ss58)
    # Several seconds of unlocking at 20 ticks a second; a frozen loop makes 1-2.
    assert ticks >= 10


@pytest.mark.slow
def test_nacl_hotkey_wrong_password(nacl_wallet: tuple[Path, str]) -> None:
    """A wrong password for a NaCl hotkey is reported as a wrong password."""
    path, _ = nacl_wallet
    with pytest.raises(IdentityError, match=r"password .* is wrong"):
        load_signer(path, "enc", "hot", password="not it")


# -- passwords, prompts and the keyring ------------------------------------------


def test_encrypted_without_any_way_to_get_a_password(
    legacy: tuple[Path, str],
) -> None:
    """No password, no keyring entry and no prompt: a clear error, no hang."""
    path, _ = legacy
    with pytest.raises(IdentityError, match="encrypted and no password"):
        load_signer(path, "old", "hot", keyring_backend=MemoryKeyring())


def test_explicit_password_skips_keyring_and_prompt(legacy: tuple[Path, str]) -> None:
    """A password given by the caller is used as is; nothing else is consulted."""
    path, ss58 = legacy
    backend = DeadDbusKeyring()
    signer = load_signer(
        path,
        "old",
        "hot",
        password=PASSWORD,
        ask_password=never_asked,
        keyring_backend=backend,
    )
    assert signs_for(signer, ss58)


def test_prompt_then_remember_then_silent_unlock(legacy: tuple[Path, str]) -> None:
    """The password is asked once, stored on request, and used silently next time."""
    path, ss58 = legacy
    backend = MemoryKeyring()
    asker = Asker(PASSWORD)
    told: list[str] = []

    signer = load_signer(
        path,
        "old",
        "hot",
        ask_password=asker,
        remember=lambda: True,
        keyring_backend=backend,
        notify=told.append,
    )
    assert signs_for(signer, ss58)
    assert asker.calls == 1
    assert list(backend.store.values()) == [PASSWORD]
    assert [service for service, _ in backend.store] == [KEYRING_SERVICE]
    assert any("remembered" in sentence for sentence in told)

    again = load_signer(
        path, "old", "hot", ask_password=never_asked, keyring_backend=backend
    )
    assert again.ss58 == ss58


def test_not_remembered_when_the_miner_says_no(legacy: tuple[Path, str]) -> None:
    """Answering no to 'remember?' leaves the keyring empty."""
    path, _ = legacy
    backend = MemoryKeyring()
    load_signer(
        path,
        "old",
        "hot",
        ask_password=Asker(PASSWORD),
        remember=lambda: False,
        keyring_backend=backend,
    )
    assert backend.store == {}


def test_wrong_typed_password(legacy: tuple[Path, str]) -> None:
    """A wrong typed password is an IdentityError and is not remembered."""
    path, _ = legacy
    backend = MemoryKeyring()
    with pytest.raises(IdentityError, match="wrong"):
        load_signer(
            path,
            "old",
            "hot",
            ask_password=Asker("guess"),
            remember=lambda: True,
            keyring_backend=backend,
        )
    assert backend.store == {}


def test_cancelled_prompt(legacy: tuple[Path, str]) -> None:
    """An empty answer (the miner cancelled) is reported, not retried."""
    path, _ = legacy
    asker = Asker("")
    with pytest.raises(IdentityError, match="No password was entered"):
        load_signer(
            path, "old", "hot", ask_password=asker, keyring_backend=MemoryKeyring()
        )
    assert asker.calls == 1


def test_stale_keyring_password_is_forgotten(legacy: tuple[Path, str]) -> None:
    """A remembered password that no longer works is dropped and the miner asked."""
    path, ss58 = legacy
    backend = MemoryKeyring()
    account = str(hotkey_path(path, "old", "hot").resolve())
    backend.set_password(KEYRING_SERVICE, account, "old password")
    asker = Asker(PASSWORD)
    told: list[str] = []

    signer = load_signer(
        path,
        "old",
        "hot",
        ask_password=asker,
        keyring_backend=backend,
        notify=told.append,
    )
    assert signer.ss58 == ss58
    assert asker.calls == 1
    assert backend.store == {}
    assert any("no longer unlocks" in sentence for sentence in told)


def test_forget_password(legacy: tuple[Path, str]) -> None:
    """forget_password removes the remembered entry for that hotkey."""
    path, _ = legacy
    backend = MemoryKeyring()
    load_signer(
        path,
        "old",
        "hot",
        ask_password=Asker(PASSWORD),
        remember=lambda: True,
        keyring_backend=backend,
    )
    forget_password(path, "old", "hot", keyring_backend=backend)
    assert backend.store == {}


@pytest.mark.parametrize("backend", [fail.Keyring(), DeadDbusKeyring()])
def test_headless_machine_without_keyring(
    legacy: tuple[Path, str], backend: Any
) -> None:
    """No keyring (or a dead D-Bus one): the miner is told and still gets in."""
    path, ss58 = legacy
    told: list[str] = []
    asked_to_remember = []

    def remember() -> bool:
        asked_to_remember.append(True)
        return True

    signer = load_signer(
        path,
        "old",
        "hot",
        ask_password=Asker(PASSWORD),
        remember=remember,
        keyring_backend=backend,
        notify=told.append,
    )
    assert signer.ss58 == ss58
    assert len(told) == 1 and told[0].startswith(NO_KEYRING_MESSAGE)
    # Offering to remember makes no sense where nothing can be remembered.
    assert asked_to_remember == []


def test_no_keyring_is_not_announced_when_remembering_is_off(
    legacy: tuple[Path, str],
) -> None:
    """Without remember_password the miner is not nagged about a missing keyring."""
    path, _ = legacy
    told: list[str] = []
    load_signer(
        path,
        "old",
        "hot",
        ask_password=Asker(PASSWORD),
        keyring_backend=fail.Keyring(),
        notify=told.append,
    )
    assert told == []


def test_keyring_status_reports_availability() -> None:
    """keyring_status says plainly whether passwords can be remembered."""
    assert keyring_status(fail.Keyring()).available is False
    assert "No system keyring" in keyring_status(fail.Keyring()).message
    assert keyring_status(MemoryKeyring()).available is True


def test_no_secret_reaches_logs_or_stdout(
    legacy: tuple[Path, str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Neither the password nor the key material is logged or printed."""
    path, _ = legacy
    caplog.set_level(logging.DEBUG)
    load_signer(
        path,
        "old",
        "hot",
        ask_password=Asker(PASSWORD),
        remember=lambda: True,
        keyring_backend=MemoryKeyring(),
    )
    with pytest.raises(IdentityError) as caught:
        load_signer(path, "old", "hot", password="typo " + PASSWORD)

    captured = capsys.readouterr()
    assert captured.out == ""
    everything = caplog.text + captured.err + str(caught.value)
    assert PASSWORD not in everything
    encrypted = hotkey_path(path, "old", "hot").read_bytes()
    key = json.loads(wallet_keyfile.decrypt_keyfile_data(encrypted, password=PASSWORD))
    for secret in (key["secretSeed"], key["privateKey"], key["secretPhrase"]):
        assert secret.removeprefix("0x") not in everything


# -- the development hotkey -----------------------------------------------------


def test_dev_signer_is_created_once_and_reused(tmp_path: Path) -> None:
    """The demo hotkey is a real unencrypted wallet file, stable across runs."""
    first = dev_signer(tmp_path)
    target = tmp_path / "dev-wallet" / DEV_WALLET_NAME / "hotkeys" / DEV_HOTKEY_NAME
    assert target.is_file()
    assert not wallet_keyfile.keyfile_data_is_encrypted(target.read_bytes())
    assert json.loads(target.read_bytes())["ss58Address"] == first.ss58

    second = dev_signer(tmp_path)
    assert second.ss58 == first.ss58
    assert signs_for(second, first.ss58)

    other = dev_signer(tmp_path / "elsewhere")
    assert other.ss58 != first.ss58


def test_dev_signer_first_start_race_makes_one_key(tmp_path: Path) -> None:
    """Several first starts at once agree on one hotkey and never prompt."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        signers = list(pool.map(lambda _: dev_signer(tmp_path), range(8)))
    assert len({signer.ss58 for signer in signers}) == 1
    hotkeys = tmp_path / "dev-wallet" / DEV_WALLET_NAME / "hotkeys"
    assert sorted(p.name for p in hotkeys.iterdir()) == [
        DEV_HOTKEY_NAME,
        DEV_HOTKEY_NAME + "pub.txt",
    ]


def test_dev_hotkey_loads_like_any_wallet_hotkey(tmp_path: Path) -> None:
    """The dev hotkey file opens with the ordinary loader and with bittensor_wallet."""
    signer = dev_signer(tmp_path)
    wallet_path = tmp_path / "dev-wallet"
    wallet = Wallet(name=DEV_WALLET_NAME, hotkey=DEV_HOTKEY_NAME, path=str(wallet_path))
    assert wallet.hotkey.ss58_address == signer.ss58
    assert wallet.hotkeypub.ss58_address == signer.ss58
    assert (
        load_signer(wallet_path, DEV_WALLET_NAME, DEV_HOTKEY_NAME).ss58 == signer.ss58
    )

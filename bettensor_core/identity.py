"""The miner's identity: its Bittensor hotkey, loaded from the wallet files.

`load_signer` opens ``WALLET_PATH/NAME/hotkeys/HOTKEY``, the very file that
``btcli`` writes, so a miner's existing hotkey works as is. An encrypted
hotkey is unlocked with, in order: a password given by the caller, a password
remembered in the system keyring, or one asked once through ``ask_password``
(and remembered if ``remember()`` says so).

`dev_signer` creates, once, an unencrypted development hotkey under the
app's data directory for the embedded demo, and reuses it afterwards.

Unlocking a NaCl-encrypted hotkey takes several seconds of Argon2 and holds
Python's GIL while it runs, so it happens in a short-lived child process:
the caller's event loop (the app's screen) keeps running. Passwords and
seeds are never logged, never put in an exception message, never printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bittensor_wallet import Keypair
from bittensor_wallet import keyfile as _keyfile

from bettensor_core.codec import Signer
from bettensor_core.errors import IdentityError

logger = logging.getLogger(__name__)

KEYRING_SERVICE = "bettensor-miner"
DEV_WALLET_NAME = "bettensor-dev"
DEV_HOTKEY_NAME = "default"

# Generous: Argon2 on a slow rig, plus starting Python.
_UNLOCK_TIMEOUT = 120.0

NO_KEYRING_MESSAGE = (
    "No system keyring is available on this machine, so the hotkey password "
    "cannot be remembered; you will be asked for it each time the app starts."
)


@dataclass(frozen=True, slots=True)
class KeyringStatus:
    """Whether passwords can be remembered here, and a sentence saying so."""

    available: bool
    message: str


def hotkey_path(wallet_path: str | Path, wallet_name: str, hotkey: str) -> Path:
    """Where a hotkey file lives: ``WALLET_PATH/NAME/hotkeys/HOTKEY``."""
    return Path(wallet_path).expanduser() / wallet_name / "hotkeys" / hotkey


def keyring_status(backend: Any | None = None) -> KeyringStatus:
    """Tell whether a usable keyring backend exists, without touching secrets."""
    try:
        if backend is None:
            import keyring

            backend = keyring.get_keyring()
        from keyring.backends import fail

        if isinstance(backend, fail.Keyring):
            return KeyringStatus(False, NO_KEYRING_MESSAGE)
        priority = getattr(backend, "priority", 1)
        if isinstance(priority, int | float) and priority <= 0:
            return KeyringStatus(False, NO_KEYRING_MESSAGE)
    except Exception as exc:
        return KeyringStatus(False, f"{NO_KEYRING_MESSAGE} ({type(exc).__name__})")
    name = getattr(backend, "name", type(backend).__name__)
    return KeyringStatus(True, f"Passwords can be remembered in the keyring ({name}).")


def load_signer(
    wallet_path: str | Path,
    wallet_name: str,
    hotkey: str,
    *,
    password: str | None = None,
    ask_password: Callable[[], str | None] | None = None,
    remember: Callable[[], bool] | None = None,
    keyring_backend: Any | None = None,
    notify: Callable[[str], None] | None = None,
) -> Signer:
    """Load the miner's hotkey and return a `Signer` for it.

    Args:
        wallet_path: the wallets folder, ``~/.bittensor/wallets`` by default
            in btcli; ``~`` is expanded.
        wallet_name: the wallet (coldkey) folder name.
        hotkey: the hotkey file name.
        password: unlocks an encrypted hotkey; skips the keyring and the prompt.
        ask_password: called at most once when the hotkey is encrypted and no
            remembered password works; returning None or "" gives up.
        remember: asked, after a typed password worked, whether to keep it
            in the system keyring.
        keyring_backend: a `keyring` backend to use instead of the system's.
        notify: receives sentences meant for the miner, such as "no keyring
            here"; they are logged as well.

    Raises:
        IdentityError: the file is missing, unreadable or corrupt, or the
            password is wrong or missing; the message says which, for a miner.
    """
    path = hotkey_path(wallet_path, wallet_name, hotkey)
    data = _read_hotkey_file(path)

    tell = _Teller(notify)

    # An unencrypted hotkey needs no password, but should be private.
    if not _is_encrypted(data):
        if _readable_by_others(path):
            tell(
                f"The hotkey file {path} is not encrypted and other users of "
                f"this machine can read it; consider: chmod 600 {path}"
            )
        return _loaded(_keypair_from_plain(data, path), path)

    if password is not None:
        keypair = _unlock(data, password, path)
        if keypair is None:
            raise IdentityError(f"The password for the hotkey {path} is wrong.")
        return _loaded(keypair, path)

    # A password remembered earlier; a stale one is forgotten, not fatal.
    account = str(path.resolve())
    remembered, status = _keyring_get(account, keyring_backend)
    if not status.available:
        # Said to the miner only when remembering was wanted; else just logged.
        if remember is not None:
            tell(status.message)
        else:
            logger.info("%s", status.message)
    if remembered:
        keypair = _unlock(data, remembered, path)
        if keypair is not None:
            logger.info("unlocked hotkey %s with the keyring password", path)
            return _loaded(keypair, path)
        tell(
            "The password remembered in the keyring no longer unlocks "
            f"{path}; please type it again."
        )
        _keyring_delete(account, keyring_backend)

    if ask_password is None:
        raise IdentityError(
            f"The hotkey {path} is encrypted and no password was given."
        )
    typed = ask_password()
    if not typed:
        raise IdentityError(f"No password was entered for the hotkey {path}.")
    keypair = _unlock(data, typed, path)
    if keypair is None:
        raise IdentityError(f"The password for the hotkey {path} is wrong.")

    # Without a keyring there is nothing to offer; the miner was told why.
    if status.available and remember is not None and remember():
        if _keyring_set(account, typed, keyring_backend):
            tell(
                "The hotkey password is now remembered in the system keyring.",
                logging.INFO,
            )
        else:
            tell(NO_KEYRING_MESSAGE)
    return _loaded(keypair, path)


def dev_signer(data_dir: str | Path) -> Signer:
    """The local development hotkey for the embedded demo.

    Created once as an ordinary, unencrypted wallet hotkey file at
    ``DATA_DIR/dev-wallet/bettensor-dev/hotkeys/default`` and reused after,
    so the demo keeps its identity (and its predictions) across restarts.
    It holds nothing of value: never register it on the real network.
    """
    wallet_path = Path(data_dir).expanduser() / "dev-wallet"
    path = hotkey_path(wallet_path, DEV_WALLET_NAME, DEV_HOTKEY_NAME)
    if not path.exists():
        _create_dev_hotkey(path)
    return load_signer(wallet_path, DEV_WALLET_NAME, DEV_HOTKEY_NAME)


def _create_dev_hotkey(path: Path) -> None:
    # Written here rather than through Wallet.create_new_hotkey, which asks
    # "Overwrite? (y/N)" on stdin when it finds a file; two first starts at
    # once must not prompt, nor replace each other's key. The file format is
    # bittensor_wallet's own.
    try:
        keypair = Keypair.create_from_mnemonic(Keypair.generate_mnemonic(12))
        data = bytes(_keyfile.serialized_keypair_to_keyfile_data(keypair))
        public = bytes(
            _keyfile.serialized_keypair_to_keyfile_data(
                Keypair(ss58_address=keypair.ss58_address)
            )
        )
    except Exception as exc:
        raise IdentityError(
            f"Could not create the development hotkey: {_safe_reason(exc)}."
        ) from None

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not _create_exclusive(path, data):
            return  # another process made it first; use theirs
        _create_exclusive(path.with_name(path.name + "pub.txt"), public)
    except OSError as exc:
        raise IdentityError(
            f"Could not create the development hotkey at {path}: {exc.strerror or exc}."
        ) from None
    logger.info("created development hotkey %s at %s", keypair.ss58_address, path)


def _create_exclusive(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new file at ``path`` (mode 600); False if it exists.

    The content goes to a temporary file first and is then linked into
    place, so nobody ever reads half a key.
    """
    temp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    return True


# -- reading and unlocking ------------------------------------------------------


def _read_hotkey_file(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise IdentityError(
            f"No hotkey file at {path}. Check the wallet path, wallet name and "
            "hotkey name (btcli wallet list shows them)."
        ) from None
    except IsADirectoryError:
        raise IdentityError(f"{path} is a folder, not a hotkey file.") from None
    except PermissionError:
        raise IdentityError(
            f"The hotkey file {path} cannot be read (permission denied)."
        ) from None
    except OSError as exc:
        raise IdentityError(
            f"The hotkey file {path} cannot be read: {exc.strerror}."
        ) from None
    if not data.strip():
        raise IdentityError(f"The hotkey file {path} is empty.")
    return data


def _readable_by_others(path: Path) -> bool:
    if os.name != "posix":
        return False
    try:
        return bool(path.stat().st_mode & 0o044)
    except OSError:
        return False


def _is_encrypted(data: bytes) -> bool:
    try:
        return bool(_keyfile.keyfile_data_is_encrypted(data))
    except Exception:
        return False


def _keypair_from_plain(data: bytes, path: Path) -> Keypair:
    try:
        with _quiet_stdout():
            return _keyfile.deserialize_keypair_from_keyfile_data(data)
    except Exception:
        raise IdentityError(
            f"The hotkey file {path} is damaged or not a hotkey file; "
            "restore it from your mnemonic (btcli wallet regen-hotkey)."
        ) from None


def _unlock(data: bytes, password: str, path: Path) -> Keypair | None:
    """Decrypt ``data``; None means the password is wrong."""
    plain = _decrypt(data, password, path)
    if plain is None:
        return None
    return _keypair_from_plain(plain, path)


def _decrypt(data: bytes, password: str, path: Path) -> bytes | None:
    # The slow NaCl/Argon2 method runs in a child process so this process's
    # GIL stays free; the fast legacy methods run here.
    try:
        method = str(_keyfile.keyfile_data_encryption_method(data))
    except Exception:
        method = ""
    if method == "NaCl":
        return _decrypt_in_child(data, password, path)
    return _decrypt_here(data, password, path)


def _decrypt_here(data: bytes, password: str, path: Path) -> bytes | None:
    try:
        with _quiet_stdout():
            return bytes(_keyfile.decrypt_keyfile_data(data, password=password))
    except Exception as exc:
        if _is_wrong_password(exc):
            return None
        raise IdentityError(
            f"The hotkey file {path} could not be decrypted; it may be damaged "
            f"({_safe_reason(exc)})."
        ) from None


_CHILD = """
import contextlib, io, json, sys
from bittensor_wallet import keyfile
request = json.loads(sys.stdin.read())
try:
    with contextlib.redirect_stdout(io.StringIO()):
        plain = keyfile.decrypt_keyfile_data(
            bytes.fromhex(request["data"]), password=request["password"]
        )
    answer = {"plain": bytes(plain).hex()}
except Exception as exc:
    answer = {"error": str(exc)}
sys.stdout.write(json.dumps(answer))
"""


def _decrypt_in_child(data: bytes, password: str, path: Path) -> bytes | None:
    # The password and file travel over a pipe, never on the command line.
    request = json.dumps({"data": data.hex(), "password": password})
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=request,
            capture_output=True,
            text=True,
            timeout=_UNLOCK_TIMEOUT,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            check=False,
        )
        # The answer is the last line; anything printed before it is noise.
        lines = done.stdout.strip().splitlines()
        answer = json.loads(lines[-1] if lines else "")
    except (OSError, ValueError, subprocess.SubprocessError):
        # No usable child (frozen app, odd interpreter): decrypt here instead.
        logger.info("unlocking the hotkey in this process")
        return _decrypt_here(data, password, path)
    if "plain" in answer:
        return bytes.fromhex(answer["plain"])
    reason = str(answer.get("error", ""))
    if "wrong password" in reason.lower():
        return None
    raise IdentityError(
        f"The hotkey file {path} could not be decrypted; it may be damaged "
        f"({_first_words(reason)})."
    )


def _is_wrong_password(exc: Exception) -> bool:
    return "wrong password" in str(exc).lower()


def _loaded(keypair: Keypair, path: Path) -> Signer:
    signer = Signer(keypair)
    logger.info("loaded hotkey %s from %s", signer.ss58, path)
    return signer


# -- the keyring ----------------------------------------------------------------


def _keyring_get(account: str, backend: Any | None) -> tuple[str | None, KeyringStatus]:
    status = keyring_status(backend)
    if not status.available:
        return None, status
    try:
        found = _backend(backend).get_password(KEYRING_SERVICE, account)
    except Exception as exc:
        # Seen on headless Linux: a backend exists but its D-Bus service not.
        return None, KeyringStatus(
            False, f"{NO_KEYRING_MESSAGE} ({type(exc).__name__})"
        )
    return (found if isinstance(found, str) else None), status


def _keyring_set(account: str, password: str, backend: Any | None) -> bool:
    try:
        _backend(backend).set_password(KEYRING_SERVICE, account, password)
    except Exception as exc:
        logger.warning(
            "could not store the password in the keyring: %s", type(exc).__name__
        )
        return False
    return True


def _keyring_delete(account: str, backend: Any | None) -> None:
    try:
        _backend(backend).delete_password(KEYRING_SERVICE, account)
    except Exception as exc:
        logger.info("could not forget the keyring password: %s", type(exc).__name__)


def _backend(backend: Any | None) -> Any:
    if backend is not None:
        return backend
    import keyring

    return keyring.get_keyring()


def forget_password(
    wallet_path: str | Path,
    wallet_name: str,
    hotkey: str,
    *,
    keyring_backend: Any | None = None,
) -> None:
    """Remove a remembered hotkey password from the keyring, if there is one."""
    account = str(hotkey_path(wallet_path, wallet_name, hotkey).resolve())
    if keyring_status(keyring_backend).available:
        _keyring_delete(account, keyring_backend)


# -- small helpers --------------------------------------------------------------


class _Teller:
    """Sends a sentence to the caller's ``notify`` and to the log, once each."""

    def __init__(self, notify: Callable[[str], None] | None):
        self._notify = notify
        self._told: set[str] = set()

    def __call__(self, message: str, level: int = logging.WARNING) -> None:
        if message in self._told:
            return
        self._told.add(message)
        logger.log(level, "%s", message)
        if self._notify is not None:
            self._notify(message)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    # bittensor_wallet prints progress ("Decrypting...") on stdout, which
    # would scribble over a running terminal app.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _safe_reason(exc: Exception) -> str:
    return _first_words(str(exc)) or type(exc).__name__


def _first_words(text: str, limit: int = 120) -> str:
    # Error texts from the wallet never hold secrets, but keep them short.
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

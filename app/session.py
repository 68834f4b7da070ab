"""What the app talks to: a started `MinerClient`, and the demo validator if any.

`open_session` runs inside the app's event loop (the embedded stub must share
it). With no validator configured it starts the bundled validator stub on a
free loopback port, with its SQLite file in the data dir, so that a newcomer
sees live games at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bettensor_core.codec import Signer
from bettensor_core.config import ValidatorConfig

if TYPE_CHECKING:
    from bettensor_core.client import MinerClient
    from bettensor_core.power import PowerPolicy

log = logging.getLogger("app.session")

DEMO_NAME = "local demo"


@dataclass
class Session:
    """The client the screens read, plus what must be stopped with it."""

    client: MinerClient
    demo_url: str | None = None
    config: Any = None
    config_path: Path | None = None
    owned: bool = True
    _stub: Any = field(default=None, repr=False)

    @property
    def demo(self) -> bool:
        return self.demo_url is not None

    async def close(self) -> None:
        """Close the client, then the embedded stub (only if this session owns them)."""
        if not self.owned:
            return
        try:
            await self.client.close()
        finally:
            if self._stub is not None:
                await self._stub.stop()


SessionOpener = Callable[[], Awaitable[Session]]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """How the embedded demo validator runs."""

    games: int | None = None
    speed: float | None = None
    seed: int | None = None


async def open_session(
    signer: Signer,
    validators: list[ValidatorConfig],
    *,
    data_dir: Path,
    power: PowerPolicy | None = None,
    demo: DemoOptions | None = None,
    config: Any = None,
    config_path: Path | None = None,
) -> Session:
    """Start the demo validator when ``validators`` is empty, then the client."""
    from bettensor_core.client import MinerClient

    data_dir.mkdir(parents=True, exist_ok=True)
    stub = None
    demo_url = None
    store = data_dir / "miner.sqlite"
    if not validators:
        stub = await _start_demo_stub(data_dir, demo or DemoOptions())
        demo_url = stub.url
        validators = [ValidatorConfig(url=stub.url, ss58=stub.ss58, name=DEMO_NAME)]
        # Demo games must never mix with a real validator's in one store.
        store = data_dir / "demo-miner.sqlite"
        log.info("demo validator started on %s", stub.url)

    client = MinerClient(signer, validators, store_path=store, power=power)
    try:
        await client.start()
    except BaseException:
        if stub is not None:
            await stub.stop()
        raise
    return Session(
        client=client,
        demo_url=demo_url,
        config=config,
        config_path=config_path,
        _stub=stub,
    )


async def _start_demo_stub(data_dir: Path, demo: DemoOptions) -> Any:
    from validator_stub.config import StubConfig
    from validator_stub.server import StubServer

    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "db": str(data_dir / "demo-validator.sqlite"),
    }
    if demo.games is not None:
        options["games"] = demo.games
    if demo.speed is not None:
        options["speed"] = demo.speed
    if demo.seed is not None:
        options["seed"] = demo.seed
    stub = StubServer(StubConfig(**options))
    await stub.start()
    return stub

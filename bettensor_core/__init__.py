"""Headless core of the Bettensor miner: protocol, signing, rules, transport, storage.

Never imports Textual; the terminal app, scripts and models all share it.
"""

from bettensor_core.client import MinerClient, Subscription
from bettensor_core.codec import Signer, decode, encode
from bettensor_core.errors import (
    BettensorError,
    ConfigError,
    ErrorCode,
    IdentityError,
    ProtocolError,
    TransportError,
    WagerError,
)
from bettensor_core.link import LinkOptions
from bettensor_core.protocol import Confirmation, Game, Prediction, Settlement
from bettensor_core.rules import Reason

__all__ = [
    "BettensorError",
    "ConfigError",
    "Confirmation",
    "ErrorCode",
    "Game",
    "IdentityError",
    "LinkOptions",
    "MinerClient",
    "Prediction",
    "ProtocolError",
    "Reason",
    "Settlement",
    "Signer",
    "Subscription",
    "TransportError",
    "WagerError",
    "decode",
    "encode",
]

"""Miner configuration: flags over environment over TOML file over defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ValidatorConfig:
    """One validator to connect to; ``ss58`` pins its hotkey when given."""

    url: str
    ss58: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.url

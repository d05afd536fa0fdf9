"""Price table and cost model: USD per million input and output tokens, per model."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import BadInput
from .models import RouteProfile


@dataclass(frozen=True)
class ModelPrice:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1_000_000


class PricingTable:
    """Prices by model name; a user file overrides or adds models on top of the defaults."""

    def __init__(self, prices: dict[str, ModelPrice]) -> None:
        self._prices = dict(prices)

    @classmethod
    def defaults(cls) -> "PricingTable":
        text = resources.files("console.core").joinpath("data/pricing.toml").read_text()
        return cls(_parse(text, "built-in pricing.toml"))

    @classmethod
    def load(cls, override: Path | None = None) -> "PricingTable":
        """Defaults, overlaid with ``override`` when it exists."""
        table = cls.defaults()
        if override is not None and override.exists():
            try:
                text = override.read_text()
            except OSError as exc:
                raise BadInput(f"{override}: cannot read pricing file ({exc.strerror}) — fix its permissions") from None
            table._prices.update(_parse(text, str(override)))
        return table

    def models(self) -> list[str]:
        return sorted(self._prices)

    def price_for(self, profile: RouteProfile) -> ModelPrice | None:
        return self._prices.get(profile.model or "") or self._prices.get(profile.route)

    def cost(self, profile: RouteProfile, tokens_in: int, tokens_out: int) -> float | None:
        """USD for one call, or None when the model has no price (shown as unknown, not 0)."""
        price = self.price_for(profile)
        return None if price is None else price.cost(tokens_in, tokens_out)


def _parse(text: str, where: str) -> dict[str, ModelPrice]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{where}: {exc} — fix the TOML syntax") from None
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise BadInput(f"{where}: [models] must be a table of model names")
    prices = {}
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise BadInput(f"{where}: models.{name} must be a table with input and output")
        unknown = set(entry) - {"input", "output"}
        if unknown:
            raise BadInput(f"{where}: models.{name}: unknown key {sorted(unknown)[0]!r} — use input and output (USD per 1M tokens)")
        try:
            inp, out = float(entry["input"]), float(entry["output"])
        except KeyError as exc:
            raise BadInput(f"{where}: models.{name}: missing {exc.args[0]!r} (USD per 1M tokens)") from None
        except (TypeError, ValueError):
            raise BadInput(f"{where}: models.{name}: input and output must be numbers") from None
        if inp < 0 or out < 0:
            raise BadInput(f"{where}: models.{name}: prices cannot be negative")
        prices[name] = ModelPrice(inp, out)
    return prices

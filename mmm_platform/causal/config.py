"""The causal suite's settings (assets/models/causal.yaml) as one frozen object."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mmm_platform.config import ASSETS_DIR

CONFIG_PATH = ASSETS_DIR / "models" / "causal.yaml"


@dataclass(frozen=True)
class IVConfig:
    outcomes: tuple[str, ...] = ("revenue", "units")
    variables: tuple[str, ...] = ("temp_mean_c", "precip_mm")
    instrument_lead: int = 1
    overid_leads: tuple[int, ...] = (0, 1)
    check_leads: tuple[int, ...] = (2, 3, 7)
    weak_instrument_f: float = 10.0
    geo_hac_bandwidth_days: int = 7

    @property
    def leads(self) -> tuple[int, ...]:
        """Every lead whose forecast error the suite needs."""
        return tuple(sorted({self.instrument_lead, *self.overid_leads, *self.check_leads}))


@dataclass(frozen=True)
class ShockConfig:
    storm_min_category: int = 1
    heatwave_min_anomaly_c: float = 5.0
    heatwave_min_z: float = 1.0
    heatwave_min_days: int = 3
    heatwave_months: tuple[int, ...] = (5, 6, 7, 8, 9)
    alerts: bool = True
    merge_days: int = 2
    pre_days: int = 14
    post_days: int = 7
    reference_until_day: int = -8
    anticipation_days: int = 1
    buffer_days: int = 7
    min_controls: int = 2
    placebo_shift_days: int = 35


@dataclass(frozen=True)
class ExperimentConfig:
    pre_period: str = "window"


@dataclass(frozen=True)
class AttributionConfig:
    periods_days: tuple[int, ...] = (28, 91, 365)


@dataclass(frozen=True)
class PlanConfig:
    pre_days: int = 14


@dataclass(frozen=True)
class CausalConfig:
    level: float = 0.95
    iv: IVConfig = field(default_factory=IVConfig)
    shocks: ShockConfig = field(default_factory=ShockConfig)
    experiments: ExperimentConfig = field(default_factory=ExperimentConfig)
    attribution: AttributionConfig = field(default_factory=AttributionConfig)
    plans: PlanConfig = field(default_factory=PlanConfig)


def _section(cls: type, values: dict[str, Any] | None) -> Any:
    values = dict(values or {})
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown setting(s) {sorted(unknown)} in {CONFIG_PATH.name}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def load_config(path: Path = CONFIG_PATH) -> CausalConfig:
    raw = yaml.safe_load(path.read_text()) or {}
    sections = {
        "iv": IVConfig,
        "shocks": ShockConfig,
        "experiments": ExperimentConfig,
        "attribution": AttributionConfig,
        "plans": PlanConfig,
    }
    unknown = set(raw) - {*sections, "level"}
    if unknown:
        raise ValueError(f"unknown section(s) {sorted(unknown)} in {path}")
    return CausalConfig(
        level=float(raw.get("level", 0.95)), **{k: _section(cls, raw.get(k)) for k, cls in sections.items()}
    )

"""What the causal suite promises, as data: its identifying assumption and its checks. Light on
purpose (no estimator imports): the Dagster definitions read it when they load, and the
estimators (linearmodels, scipy) are imported only when the suite runs."""

from __future__ import annotations

from dataclasses import dataclass

IDENTIFYING_ASSUMPTION = (
    "Marketing and demand react to the weather forecast, not to its error: the lead-1 forecast error "
    "(observed minus the forecast issued the day before) is independent of every forecast of lead >= 1 "
    "(the forecasts are efficient) and of everything that reacted to them (bids, staffing, trips planned), "
    "and moves the observed weather one for one. It is therefore a valid instrument for the observed "
    "weather, with geo and date effects absorbed. The forecast itself is never a control: observed = "
    "forecast + error exactly, so controlling for it makes the instrument the regressor."
)

#: causal.lift study ids of single events (`storm_03`); the headline rows are the pooled, placebo,
#: TWFE, experiment, plan and weather-against-normal studies (`storm_all`, `EXP-01-search-holdout`, ...)
PER_EVENT_STUDY = r"^(storm|heatwave|severe_alert)_\d"


@dataclass(frozen=True)
class CheckSpec:
    table: str
    name: str
    description: str


CHECK_SPECS = (
    CheckSpec("weather_effects", "instrument_strength", "Every IV first-stage F (cluster-robust) is at least 10."),
    CheckSpec(
        "weather_effects",
        "instrument_validity",
        "Over-identified with valid leads, Hansen J does not reject; every lead checked as invalid is flagged.",
    ),
    CheckSpec("lift", "pretrend", "No pooled shock or experiment readout has a pre-trend (p >= 0.05)."),
    CheckSpec("lift", "placebo", "Placebo shocks (the same geos, dates moved earlier) find nothing (CI covers 0)."),
    CheckSpec("lift_tests", "pymc_ready", "Lift-test rows have sigma > 0 and delta_x, delta_y of one sign."),
)

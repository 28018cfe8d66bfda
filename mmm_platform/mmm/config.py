"""The model's configuration as data: `assets/models/mmm.yaml`, checked by a pydantic schema.

Every section refuses unknown keys (`extra="forbid"`), so a typo is an error that names the key and
where it sits, not a silently ignored setting. Channels are not listed here: they come from the data
(`media_spend.channel`, `channel_group`); `channels.overrides` changes the priors of a channel by
name, and a channel the file does not name gets the defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmm_platform.config import ASSETS_DIR

DEFAULT_CONFIG_PATH = ASSETS_DIR / "models" / "mmm.yaml"

#: columns of features.geo_day that are outcomes of media (or the media itself): a control built
#: from one of them is post-treatment and biases every channel's effect, so the schema refuses it
POST_TREATMENT_COLUMNS = frozenset(
    {
        # the target and what it is made of
        "revenue",
        "pos_revenue",
        "online_revenue",
        "orders",
        "units",
        "cogs",
        "contribution_margin",
        "new_customers",
        "returning_customers",
        "assisted_conversions",
        # the media and what platforms report about it
        "spend",
        "planned_spend",
        "plan_deviation",
        "plan_deviation_pct",
        "impressions",
        "clicks",
        "conversions",
        "attributed_revenue",
        "cpm",
        "cpc",
        "cpa",
        "paid_sov_pct",
        "active_campaigns",
        "active_channels",
        "impression_share_pct",
        "top_of_page_rate_pct",
        # demand traces: they follow realised demand, media included
        "sessions",
        "app_sessions",
        "add_to_cart",
        "checkouts",
        "organic_search_clicks",
        "social_mentions",
        "search_trend_index",
        "footfall_index",
        "mobility_index",
        "avg_daily_units_28d",
        "days_of_cover",
        "staffing_level_pct",
    }
)
#: prefixes of media columns in geo_day (spend_group_brand, impressions_obj_..., pacing_...)
POST_TREATMENT_PREFIXES = ("spend_", "impressions_", "clicks_", "pacing_")

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SQL_WORDS = frozenset(
    {
        "case",
        "when",
        "then",
        "else",
        "end",
        "and",
        "or",
        "not",
        "null",
        "is",
        "in",
        "true",
        "false",
        "cast",
        "as",
        "double",
        "integer",
        "int",
        "date",
        "greatest",
        "least",
        "coalesce",
        "abs",
        "ln",
        "log",
        "exp",
        "sqrt",
        "lag",
        "lead",
        "over",
        "partition",
        "by",
        "order",
        "if",
        "interval",
        "day",
        "extract",
        "dayofweek",
        "dayofmonth",
        "month",
        "year",
        "nullif",
        "date_part",
        "date_diff",
        "power",
        "pow",
    }
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Control(Strict):
    """One control: a SQL expression over the columns of `features.geo_day` (one geo-day), and how a
    week aggregates it (`sum` for flows and counts of days, `mean` for levels)."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    expr: str
    agg: Literal["sum", "mean"] = "mean"
    #: what the control stands for, in words (shown in docs/mmm.md and the asset metadata)
    doc: str = ""

    @model_validator(mode="after")
    def _not_post_treatment(self) -> Control:
        bad = sorted(
            {
                w
                for w in _IDENT.findall(re.sub(r"'[^']*'", "", self.expr))
                if w.lower() not in _SQL_WORDS
                and (w.lower() in POST_TREATMENT_COLUMNS or w.lower().startswith(POST_TREATMENT_PREFIXES))
            }
        )
        if bad:
            raise ValueError(
                f"control {self.name!r} uses {', '.join(bad)}: an outcome of media (post-treatment); "
                "controlling for it absorbs part of every channel's effect"
            )
        return self


class Events(Strict):
    """Categorical calendar columns of geo_day turned into one indicator per level found in the data
    (e.g. every holiday name); levels seen on fewer than `min_days` geo-days are pooled as `other`."""

    columns: list[str] = ["holiday_name", "major_event"]
    min_days: int = Field(10, ge=1)
    #: days after each event level that get their own indicator (the day after a holiday, ...)
    include_day_after: bool = False


class Seasonality(Strict):
    #: national effects per period (date fixed effects, shrunk): they absorb every national
    #: movement, and the controls that do not vary between geos on a date are dropped
    date_effects: bool = True
    yearly_fourier: int = Field(3, ge=0, le=10, description="Fourier order of the yearly cycle per geo (0: none)")
    day_of_week: bool = Field(True, description="day-of-week indicators (daily grain only)")
    trend: Literal["linear", "none"] = "linear"


class LogNormalPrior(Strict):
    """A positive quantity: median and the sd of its log."""

    median: float = Field(gt=0)
    log_sd: float = Field(gt=0)


class BetaPrior(Strict):
    """A share in (0, 1): mean and concentration (alpha + beta)."""

    mean: float = Field(gt=0, lt=1)
    concentration: float = Field(gt=0)


class ChannelPriors(Strict):
    """Per-channel priors (defaults, or an override for one channel by name). `None`: inherit."""

    #: return at the channel's average spend, revenue per dollar; centred on the channel's group
    roas: LogNormalPrior | None = None
    #: adstock retention per period of the data's grain (geometric, delayed); converted from a daily
    #: value when the grain is weekly: alpha_week = alpha_day ** 7
    adstock_alpha_daily: BetaPrior | None = None
    #: half-saturation of the adstocked spend, in units of the channel's mean spend in the geo
    half_saturation: LogNormalPrior | None = None
    #: Hill slope
    hill_slope: LogNormalPrior | None = None
    #: delayed adstock: periods from spend to peak (daily)
    peak_delay_days: LogNormalPrior | None = None


class Priors(Strict):
    #: a channel group's return before the data (median ROAS at mean spend and the sd of its log);
    #: each channel's log-ROAS is drawn around its group's with `channel_log_sd`
    media_roas: LogNormalPrior = LogNormalPrior(median=1.0, log_sd=0.7)
    channel_log_sd: float = Field(0.8, gt=0)
    #: geo-to-geo spread of a channel's log effect (partial pooling): median of its log-normal prior
    geo_log_sd: float = Field(0.2, gt=0)
    #: share of revenue that is not media (the baseline), before the data: median of the per-geo
    #: intercept as a share of the geo's mean revenue
    baseline_share: LogNormalPrior = LogNormalPrior(median=0.85, log_sd=0.25)
    #: controls are standardised; their effect in units of the geo's mean revenue per sd
    control_sd: float = Field(0.1, gt=0)
    seasonality_sd: float = Field(0.05, gt=0)
    #: scale of the national date effects (half-normal), in units of the geo's mean revenue
    date_effect_sd: float = Field(0.2, gt=0)
    #: observation noise, in units of the geo's mean revenue (half-normal scale)
    noise_sd: float = Field(0.1, gt=0)
    #: likelihood
    likelihood: Literal["normal", "student_t"] = "normal"
    defaults: ChannelPriors = ChannelPriors(
        adstock_alpha_daily=BetaPrior(mean=0.7, concentration=6.0),
        half_saturation=LogNormalPrior(median=1.5, log_sd=0.6),
        hill_slope=LogNormalPrior(median=1.2, log_sd=0.3),
        peak_delay_days=LogNormalPrior(median=2.0, log_sd=0.8),
    )


class Channels(Strict):
    #: priors for one channel by name; names not in the data are reported, not an error
    overrides: dict[str, ChannelPriors] = {}
    #: channels whose total spend in the window is below this share of all spend are dropped
    min_spend_share: float = Field(0.001, ge=0, lt=1)


class Adstock(Strict):
    form: Literal["geometric", "delayed", "weibull_pdf", "weibull_cdf"] = "geometric"
    #: carry-over length in days (converted to periods of the grain, rounded up)
    l_max_days: int = Field(35, ge=1, le=120)


class Saturation(Strict):
    form: Literal["hill", "logistic"] = "hill"


class Geo(Strict):
    #: "partial": each geo's channel effects drawn around the channel's (partial pooling);
    #: "pooled": one effect per channel in units of each geo's scale
    pooling: Literal["partial", "pooled"] = "partial"
    #: with more geos than this, geos are pooled within their climate cluster (features.geo_cluster)
    #: first: cluster effects around the channel's, geo effects around their cluster's
    cluster_min_geos: int = Field(40, ge=2)


class Calibration(Strict):
    #: lift tests (causal.lift_tests): "auto" uses the table when it exists; "off" never; "required"
    #: fails when it is missing or empty
    lift_tests: Literal["auto", "off", "required"] = "auto"
    table: str = "causal.lift_tests"
    #: weather effects (causal.weather_priors, $ per geo-day per unit) as priors on the matching
    #: controls: "auto" uses the table when it exists
    weather_priors: Literal["auto", "off", "required"] = "auto"
    weather_table: str = "causal.weather_priors"


class Sampler(Strict):
    name: Literal["nutpie", "pymc", "numpyro"] = "nutpie"
    draws: int = Field(2000, ge=10)
    tune: int = Field(1000, ge=10)
    chains: int = Field(2, ge=1, le=16)
    target_accept: float = Field(0.9, gt=0.5, lt=1)
    seed: int = 20260
    #: nutpie's mass-matrix adaptation: "diag" (diagonal) or "low_rank" (diagonal plus the leading
    #: directions of posterior correlation, e.g. between correlated controls)
    adaptation: Literal["diag", "low_rank"] = "diag"
    cores: int | None = Field(None, ge=1, description="parallel chains; None: the machine's cores, at most chains")


class Checks(Strict):
    """What a converged fit is: failing any is a visible warning check on the fit asset."""

    max_rhat: float = Field(1.01, gt=1)
    max_divergences: int = Field(0, ge=0)
    min_ess_bulk: float = Field(400, ge=0)


class Outputs(Strict):
    #: response curves: grid from 0 to this multiple of the current average period spend
    curve_max_multiple: float = Field(2.5, ge=2)
    curve_points: int = Field(41, ge=5, le=401)
    #: ROAS credible interval (HDI) probability
    hdi_prob: float = Field(0.9, gt=0, lt=1)
    #: posterior draws used for the outputs (thinned evenly); None: all
    output_draws: int | None = Field(400, ge=10)
    #: plots written here (full size) besides the inline PNG in the asset metadata; relative to
    #: MMM_REPORT_DIR
    plot_dir: str = "mmm"


class Allocator(Strict):
    """The budget plan the allocator writes after every refit (allocator.recommendations)."""

    objective: Literal["revenue", "margin"] = "revenue"
    #: total budget per period as a multiple of the current total spend
    budget_multiple: float = Field(1.0, gt=0)
    #: largest change of any channel-geo spend from current, as a share (0.3: within +/-30%)
    max_change: float | None = Field(0.3, gt=0)
    #: channel -> [lower, upper] multiples of the channel's current spend (null: no bound)
    channel_bounds_multiple: dict[str, tuple[float | None, float | None]] = {}


class MMMConfig(Strict):
    version: Literal[1] = 1
    target: str = "revenue"
    margin: str = "contribution_margin"
    grain: Literal["week", "day"] = "week"
    #: days of history each refit sees, ending at its refit date; None: all
    window_days: int | None = Field(730, ge=84)
    controls: list[Control] = []
    events: Events = Events()
    seasonality: Seasonality = Seasonality()
    adstock: Adstock = Adstock()
    saturation: Saturation = Saturation()
    priors: Priors = Priors()
    channels: Channels = Channels()
    geo: Geo = Geo()
    calibration: Calibration = Calibration()
    sampler: Sampler = Sampler()
    checks: Checks = Checks()
    outputs: Outputs = Outputs()
    allocator: Allocator = Allocator()

    @field_validator("controls")
    @classmethod
    def _unique_controls(cls, v: list[Control]) -> list[Control]:
        names = [c.name for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"controls named more than once: {', '.join(dup)}")
        return v

    def channel_priors(self, channel: str) -> ChannelPriors:
        """The defaults with the channel's override on top (field by field)."""
        base = self.priors.defaults.model_dump()
        over = self.channels.overrides.get(channel)
        if over is not None:
            base |= {k: v for k, v in over.model_dump().items() if v is not None}
        return ChannelPriors.model_validate(base)

    @property
    def period_days(self) -> int:
        return 7 if self.grain == "week" else 1

    @property
    def l_max(self) -> int:
        return max(1, -(-self.adstock.l_max_days // self.period_days))


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the file, the key and why."""


def _format(err: ValidationError, path: Path | str, what: str) -> str:
    lines = [f"{path}: {err.error_count()} problem(s) in the {what}"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (not part of the schema; check the spelling)"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def check_config[Schema: BaseModel](schema: type[Schema], data: dict | None, source: Path | str, what: str) -> Schema:
    """`data` checked by `schema`; every problem is one line naming its key (`what`: the file's role)."""
    try:
        return schema.model_validate(data or {})
    except ValidationError as err:
        raise ConfigError(_format(err, source, what)) from None


def read_config[Schema: BaseModel](schema: type[Schema], path: Path, what: str) -> Schema:
    """A YAML file checked by `schema`."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no {what} file there") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    return check_config(schema, data, path, what)


def parse_config(data: dict | None, source: Path | str = "<dict>") -> MMMConfig:
    return check_config(MMMConfig, data, source, "MMM configuration")


def load_config(path: Path | str | None = None) -> MMMConfig:
    """Read and check the configuration (default `assets/models/mmm.yaml`)."""
    return read_config(MMMConfig, Path(path) if path is not None else DEFAULT_CONFIG_PATH, "MMM configuration")

"""The demo world: a retailer whose sales respond to media, weather, promotions and context, with the
ground truth to check every estimate against (see docs/simulator.md)."""

from mmm_platform.simulate.config import WorldConfig
from mmm_platform.simulate.world import World, simulate
from mmm_platform.simulate.write import write_landing

__all__ = ["World", "WorldConfig", "simulate", "write_landing"]

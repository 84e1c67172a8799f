"""The ``gpu`` profile's first stage: ``world-base``, SmolLM2 after reading the tiny world.

Introduced in chapter 0; the training is `tinyworld.world_base`. The ``cpu`` profile's base model
has read the world already, so there the stage does not exist (`runtime.graph.base_stage`).
"""

from __future__ import annotations

from ..runtime.graph import WORLD_BASE, Stage

STAGES = (
    Stage(WORLD_BASE, module="posttrain_utils.tinyworld.world_base", chapter=0,
          upstream=("base",), budget="world_base"),
)

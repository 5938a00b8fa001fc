"""The code location `workspace.yaml` loads, built only when Dagster asks for it.

Importing this module builds nothing: the definitions come from the environment's settings
when a Dagster tool (webserver, daemon, a run's step process) loads the location.
"""

import dagster as dg

from feature_assets.assets.build import build_definitions
from resources.settings import Settings


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Settings.from_env())

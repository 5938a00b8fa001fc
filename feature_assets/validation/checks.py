"""Each contract check is pandera's check of the same name (feature and raw columns alike)."""

import pandera.pandas as pa

from feature_assets.kernel.contract import CHECK_NAMES

CHECKS = {name: getattr(pa.Check, name) for name in CHECK_NAMES}

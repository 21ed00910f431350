"""TMU's registry entry; the method itself, stage by stage, is `tmu_core.tmu.method`."""

from ..tmu.config import TMUConfig, dataset_defaults
from ..tmu.request import run
from ..unlearn.registry import Display, Method, register

register(
    "tmu",
    "Twin Machine Unlearning: predict easy/hard from a twin problem, unlearn only the hard samples",
    Method(
        config_cls=TMUConfig,
        run=run,
        defaults=dataset_defaults,
        display=Display("TMU", "TMU", "#1565c0", 5),
        primary=True,
        embed=True,
    ),
)

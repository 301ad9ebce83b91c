"""Anomaly-segmentation methods behind one interface (:mod:`methods.base`).

Importing this package registers every method: each module below decorates its class with
``@register(name)``. A new method is one module plus one import line here and one config file in
``configs/method/``.
"""

from methods._guard import check_datasets_package

check_datasets_package()

# Registration order is the order of registered_methods(): keep these lines as written.
# isort: off
from methods import ae  # noqa: E402,F401  (registers "ae")
from methods import itermask2  # noqa: E402,F401  (registers "itermask2")
from methods import dae  # noqa: E402,F401  (registers "dae")
from methods import cyclic_unet  # noqa: E402,F401  (registers "cyclic_unet")
from methods import ddpm  # noqa: E402,F401  (registers "ddpm")
from methods import autoddpm  # noqa: E402,F401  (registers "autoddpm")

# isort: on
from methods.base import (  # noqa: E402
    AnomalyMethod,
    MethodContext,
    MethodOutput,
    TrainBudget,
    create_method,
    register,
    registered_methods,
)

__all__ = [
    "AnomalyMethod",
    "MethodContext",
    "MethodOutput",
    "TrainBudget",
    "create_method",
    "register",
    "registered_methods",
]

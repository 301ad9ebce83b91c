"""Anomaly-segmentation methods behind one interface (:mod:`methods.base`).

Importing this package registers every method: it imports each module and subpackage of ``methods/``, and
each method decorates its class with ``@register(name)``. A new method is one module here plus one config
file in ``configs/method/``; nothing else is edited.
"""

import importlib
import pkgutil

from methods._guard import check_datasets_package

check_datasets_package()

from methods.base import (  # noqa: E402
    AnomalyMethod,
    MethodContext,
    MethodOutput,
    TrainBudget,
    create_method,
    register,
    registered_methods,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "AnomalyMethod",
    "MethodContext",
    "MethodOutput",
    "TrainBudget",
    "create_method",
    "register",
    "registered_methods",
]

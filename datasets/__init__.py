"""Dataset loaders and the built-in synthetic brain-lesion generator of the benchmark suite.

This top-level package is named ``datasets``, like the Hugging Face package. ``benchmark`` and
``methods`` check on import (``methods._guard``) that this package, not another one, was found.
"""

IS_BRAIN_UAS_BENCH_DATASETS = True  # marker read by methods._guard.check_datasets_package

"""The one exception the data loaders raise for bad input on disk or in the dataset config."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset is missing, incomplete or not what its layout promises.

    The message always names the file or folder at fault and what was expected there, so that a user
    can fix their copy of the data without reading the loader's code.
    """

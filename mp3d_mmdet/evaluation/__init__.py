"""Lesion-detection evaluation: the FROC functional core and the metric."""
from .functional import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403

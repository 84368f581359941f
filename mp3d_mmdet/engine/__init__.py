"""Training-loop components: the device-aware runner and hooks."""
from .hooks import *  # noqa: F401,F403
from .runner import *  # noqa: F401,F403

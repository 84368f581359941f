"""Training-loop components: hooks (registered in ``mmdet.registry.HOOKS``)."""
from .hooks import *  # noqa: F401,F403

"""Models: the MP3D backbone family and the 3D-to-2D neck adapters."""
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403

"""Models: the MP3D backbone family, the 3D-to-2D neck adapters and weight inflation."""
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .utils import *  # noqa: F401,F403

"""The shapes the synthetic CT is drawn with: in-plane ellipses, and the lesion and vessel
blobs whose cross-section at a slice is such an ellipse. Coordinates are in mm: x = column *
spacing, y = row * spacing, z = (slice number - 1) * slice interval."""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ['Ellipse', 'Blob']


@dataclass
class Ellipse:
    """In-plane ellipse: centre ``(cx, cy)``, semi-axes ``ax``, ``ay`` (mm), rotated by
    ``theta`` (radians)."""
    cx: float
    cy: float
    ax: float
    ay: float
    theta: float = 0.0

    def contains(self, x: float, y: float, scale: float = 1.0) -> bool:
        """Whether ``(x, y)`` lies strictly inside the ellipse with semi-axes x ``scale``."""
        c, s = math.cos(self.theta), math.sin(self.theta)
        u = (x - self.cx) * c + (y - self.cy) * s
        v = -(x - self.cx) * s + (y - self.cy) * c
        return (u / (self.ax * scale))**2 + (v / (self.ay * scale))**2 < 1.0


@dataclass
class Blob:
    """A lesion (ellipsoid, ``semi_z`` finite) or a vessel (tube along z, ``semi_z`` = inf).

    ``target_hu`` is the HU painted inside, ``edge_mm`` the half width of the soft edge,
    ``tilt_x`` / ``tilt_y`` the in-plane shift of a vessel per mm of z, ``region`` the anatomy
    region it sits in (:data:`~mp3d_mmdet.synthetic.anatomy.REGIONS`).
    """
    cx: float
    cy: float
    cz: float
    semi_x: float
    semi_y: float
    semi_z: float
    theta: float
    target_hu: float
    edge_mm: float
    tilt_x: float = 0.0
    tilt_y: float = 0.0
    region: str = 'abdomen'

    def cross_section(self, z: float) -> Optional[Tuple[Ellipse, float]]:
        """The ellipse and the ``(dz / semi_z)^2`` term at slice ``z``; None if absent."""
        if math.isinf(self.semi_z):
            return Ellipse(self.cx + self.tilt_x * (z - self.cz),
                           self.cy + self.tilt_y * (z - self.cz), self.semi_x, self.semi_y,
                           self.theta), 0.0
        rz2 = ((z - self.cz) / self.semi_z)**2
        # the painted ramp reaches alpha = 0 at r = 1 + edge / min(semi_x, semi_y)
        reach = 1.0 + self.edge_mm / min(self.semi_x, self.semi_y)
        if rz2 >= reach**2:
            return None
        return Ellipse(self.cx, self.cy, self.semi_x, self.semi_y, self.theta), rz2

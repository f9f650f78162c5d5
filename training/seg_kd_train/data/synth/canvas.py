"""A pinhole camera over a flat ground and a canvas that draws image, labels and depth together.

Every shape is drawn with the same integer polygon into the RGB image, the trainId label map and
the depth bookkeeping, so labels are exact: a pixel's label is the class of the shape seen there.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

from seg_kd_ros.postprocess import IGNORE_INDEX

SKY_DEPTH = 1.0e4
"""Depth (metres) given to sky pixels."""

KIND_SKY, KIND_GROUND, KIND_FACADE, KIND_SPRITE = 0, 1, 2, 3


@dataclass
class Camera:
    """Pinhole camera at height `height` above flat ground, looking along +Z.

    World X is to the right, Y up from the ground, Z forward (metres).

    Attributes:
        focal: focal length in pixels.
        cx: column of the vanishing point.
        horizon: row of the horizon.
        height: camera height above the ground in metres.
    """

    focal: float
    cx: float
    horizon: float
    height: float = 1.4

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Project world points to pixel (column, row); arrays broadcast, result [..., 2]."""
        z = np.maximum(z, 0.05)
        u = self.cx + self.focal * np.asarray(x) / z
        v = self.horizon + self.focal * (self.height - np.asarray(y)) / z
        return np.stack(np.broadcast_arrays(u, v), axis=-1)

    def scale(self, z: float) -> float:
        """Pixels per metre at depth `z`."""
        return self.focal / max(z, 0.05)


@dataclass
class Canvas:
    """Image (float32 RGB in [0, 1]), trainIds, depth bookkeeping and emitted light.

    Attributes:
        width: image width.
        height: image height.
        image: HxWx3 float32 RGB.
        label: HxW uint8 trainIds.
        kind: HxW uint8: sky, ground, facade (vertical plane along the road) or sprite.
        zconst: depth of sprite pixels; plane_x: lateral position of facade pixels.
        emissive: HxWx3 float32 light emitted at night (lamps, car lights, lit windows).
        lamps: (column, row, radius in px) of light pools cast on the ground by street lamps.
    """

    width: int
    height: int
    image: np.ndarray = field(init=False)
    label: np.ndarray = field(init=False)
    kind: np.ndarray = field(init=False)
    zconst: np.ndarray = field(init=False)
    plane_x: np.ndarray = field(init=False)
    emissive: np.ndarray = field(init=False)
    lamps: list = field(default_factory=list)

    def __post_init__(self):
        shape = (self.height, self.width)
        self.image = np.zeros(shape + (3,), np.float32)
        self.label = np.full(shape, IGNORE_INDEX, np.uint8)
        self.kind = np.zeros(shape, np.uint8)
        self.zconst = np.zeros(shape, np.float32)
        self.plane_x = np.zeros(shape, np.float32)
        self.emissive = np.zeros(shape + (3,), np.float32)

    def fill(self, polys, color, label: int, kind: int, value: float = 0.0) -> None:
        """Fill polygons (list of [K, 2] float arrays) in image, label and depth maps.

        Args:
            polys: polygons in pixel coordinates.
            color: RGB in [0, 1].
            label: trainId written for the covered pixels.
            kind: KIND_GROUND, KIND_FACADE (value = lateral X) or KIND_SPRITE (value = depth).
            value: see `kind`.
        """
        color = tuple(float(c) for c in color)
        for p in polys:  # one call per polygon: overlapping polygons in one call would cancel
            pts = [np.round(p).astype(np.int32).reshape(-1, 1, 2)]
            cv2.fillPoly(self.image, pts, color)
            cv2.fillPoly(self.label, pts, int(label))
            cv2.fillPoly(self.kind, pts, int(kind))
            if kind == KIND_SPRITE:
                cv2.fillPoly(self.zconst, pts, float(value))
            elif kind == KIND_FACADE:
                cv2.fillPoly(self.plane_x, pts, float(value))

    def fill_paint(self, polys, color) -> None:
        """Paint polygons into the image only (markings, windows: the label stays)."""
        pts = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polys]
        cv2.fillPoly(self.image, pts, tuple(float(c) for c in color))

    def paint_ground(self, polys, color) -> None:
        """Paint polygons into the image only where the ground is seen (shadows, rails)."""
        mask = np.zeros(self.label.shape, np.uint8)
        cv2.fillPoly(mask, [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polys], 1)
        self.image[(mask > 0) & (self.kind == KIND_GROUND)] = np.asarray(color, np.float32)

    def glow(self, polys, color) -> None:
        """Mark polygons as light emitters (drawn at night only)."""
        pts = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in polys]
        cv2.fillPoly(self.emissive, pts, tuple(float(c) for c in color))

    def depth(self, cam: Camera) -> np.ndarray:
        """Per-pixel depth in metres from the bookkeeping maps (sky = SKY_DEPTH)."""
        rows = np.arange(self.height, dtype=np.float32)[:, None] - cam.horizon
        cols = np.arange(self.width, dtype=np.float32)[None, :] - cam.cx
        with np.errstate(divide='ignore', invalid='ignore'):
            ground = cam.focal * cam.height / np.maximum(rows, 0.5)
            ground = np.where(rows > 0.5, ground, SKY_DEPTH)
            facade = np.abs(cam.focal * self.plane_x / np.where(np.abs(cols) < 0.5, 0.5, cols))
        depth = np.full((self.height, self.width), SKY_DEPTH, np.float32)
        depth = np.where(self.kind == KIND_GROUND, np.broadcast_to(ground, depth.shape), depth)
        depth = np.where(self.kind == KIND_FACADE, np.clip(facade, 1.0, 300.0), depth)
        depth = np.where(self.kind == KIND_SPRITE, self.zconst, depth)
        return depth.astype(np.float32)


def rect(cam: Camera, x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """Projected fronto-parallel rectangle [x0, x1] x [y0, y1] (metres) at depth z."""
    return cam.project(np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1]), z)


def ellipse_poly(cam: Camera, xc: float, yc: float, rx: float, ry: float, z: float,
                 n: int = 16) -> np.ndarray:
    """Projected fronto-parallel ellipse (centre, radii in metres) at depth z as a polygon."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return cam.project(xc + rx * np.cos(t), yc + ry * np.sin(t), z)


def ring_polys(cam: Camera, xc: float, yc: float, r: float, width: float, z: float,
               n: int = 20) -> list[np.ndarray]:
    """A ring (wheel) as n quads, fronto-parallel at depth z."""
    t = np.linspace(0, 2 * np.pi, n + 1)
    ro, ri = r, max(r - width, 0.0)
    quads = []
    for a, b in zip(t[:-1], t[1:], strict=True):
        xs = xc + np.array([ro * np.cos(a), ro * np.cos(b), ri * np.cos(b), ri * np.cos(a)])
        ys = yc + np.array([ro * np.sin(a), ro * np.sin(b), ri * np.sin(b), ri * np.sin(a)])
        quads.append(cam.project(xs, ys, z))
    return quads


def bar(cam: Camera, p: tuple[float, float], q: tuple[float, float], width: float,
        z: float) -> np.ndarray:
    """A bar `width` metres wide from p to q ((x, y) metres), fronto-parallel at depth z."""
    d = np.array(q, float) - np.array(p, float)
    n = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9) * width / 2
    pts = np.array([np.add(p, n), np.add(q, n), np.subtract(q, n), np.subtract(p, n)])
    return cam.project(pts[:, 0], pts[:, 1], z)

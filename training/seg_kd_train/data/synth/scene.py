"""Procedural driving scenes with exact Cityscapes trainIds, depth and night-time light sources.

A straight road (2-4 lanes, lane marks, sometimes a crossing) seen from a car, sidewalks and
terrain on both sides, then per side a row of buildings, a hedge/forest or open land, sometimes a
wall or fence in front; traffic (cars, trucks, buses, trams, motorcycles, cyclists) in the
lanes, parked cars, pedestrians, poles, street lamps, traffic lights and signs, trees; a distant
skyline.
Everything is placed in metres and projected through a pinhole camera (one vanishing point), drawn
far to near, so occlusions and sizes follow perspective. All randomness comes from one generator.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from seg_kd_train.data.cityscapes_labels import TRAIN_IDS
from seg_kd_train.data.synth import objects as obj
from seg_kd_train.data.synth.canvas import (
    KIND_FACADE,
    KIND_GROUND,
    KIND_SPRITE,
    Camera,
    Canvas,
    rect,
)

ROAD, SIDEWALK, BUILDING, WALL, FENCE, VEGETATION, TERRAIN, SKY = (TRAIN_IDS[n] for n in (
    'road', 'sidewalk', 'building', 'wall', 'fence', 'vegetation', 'terrain', 'sky'))
Z_NEAR, Z_FAR, Z_BACKDROP = 1.0, 110.0, 140.0

# texture amplitudes per trainId: (fine pixel noise, mid-scale blotches)
_TEXTURE = np.zeros((256, 2), np.float32)
for _name, _amp in {'road': (0.05, 0.12), 'sidewalk': (0.07, 0.08), 'building': (0.05, 0.12),
                    'wall': (0.06, 0.15), 'fence': (0.08, 0.05), 'pole': (0.03, 0.03),
                    'vegetation': (0.3, 0.3), 'terrain': (0.15, 0.22), 'sky': (0.01, 0.05),
                    'person': (0.04, 0.04), 'car': (0.02, 0.03), 'rider': (0.03, 0.03),
                    'truck': (0.03, 0.03), 'bus': (0.03, 0.03), 'motorcycle': (0.03, 0.03),
                    'bicycle': (0.03, 0.03)}.items():
    _TEXTURE[TRAIN_IDS[_name]] = _amp


@dataclass
class Scene:
    """A rendered clear-weather scene.

    Attributes:
        image: HxWx3 float32 RGB in [0, 1].
        label: HxW uint8 trainIds.
        depth: HxW float32 metres (sky = SKY_DEPTH).
        camera: the camera it was seen through.
        emissive: HxWx3 float32 light emitted at night.
        lamps: street-lamp light pools on the ground, (column, row, radius px).
        lane_x: lateral centres (metres) of the lanes, for tyre tracks in snow.
    """

    image: np.ndarray
    label: np.ndarray
    depth: np.ndarray
    camera: Camera
    emissive: np.ndarray
    lamps: list
    lane_x: list


def _ground_quad(cam: Camera, x0: float, x1: float, z0: float = Z_NEAR,
                 z1: float = Z_FAR) -> np.ndarray:
    return cam.project(np.array([x0, x1, x1, x0]), np.zeros(4), np.array([z0, z0, z1, z1]))


def _facade(cam: Camera, x: float, z0: float, z1: float, y0: float, y1: float) -> np.ndarray:
    return cam.project(np.full(4, x), np.array([y0, y0, y1, y1]), np.array([z0, z1, z1, z0]))


def _draw_sky_and_backdrop(cv: Canvas, cam: Camera, rng: np.random.Generator) -> None:
    h, w = cv.height, cv.width
    top = np.array([0.3, 0.5, 0.8]) * rng.uniform(0.7, 1.1) + rng.uniform(-0.05, 0.05, 3)
    bottom = np.array([0.75, 0.82, 0.9]) * rng.uniform(0.85, 1.05)
    t = np.clip(np.arange(h, dtype=np.float32) / max(cam.horizon, 1.0), 0, 1)[:, None, None]
    cv.image[:] = np.clip(top * (1 - t) + bottom * t, 0, 1)
    clouds = cv2.resize(rng.random((4, 8)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
    cv.image += (np.clip(clouds - 0.5, 0, 1) * rng.uniform(0.0, 0.6))[..., None]
    cv.label[:] = SKY
    # distant skyline: buildings and tree lines at Z_BACKDROP
    span = (w / cam.focal) * Z_BACKDROP * 1.2
    x = -span
    while x < span:
        width = rng.uniform(8, 30)
        if rng.random() < 0.35:
            colour = np.array([0.2, 0.3, 0.15]) * rng.uniform(0.7, 1.2)
            cv.fill([rect(cam, x, x + width, 0, rng.uniform(6, 14), Z_BACKDROP)], colour,
                    VEGETATION, KIND_SPRITE, Z_BACKDROP)
        else:
            colour = np.full(3, rng.uniform(0.35, 0.65)) + rng.uniform(-0.04, 0.04, 3)
            cv.fill([rect(cam, x, x + width, 0, rng.uniform(8, 45), Z_BACKDROP)], colour,
                    BUILDING, KIND_SPRITE, Z_BACKDROP)
        x += width


def _draw_ground(cv, cam, rng, road, sides) -> None:
    left, right = road
    grass = np.array([0.35, 0.45, 0.2]) * rng.uniform(0.8, 1.2)
    cv.fill([_ground_quad(cam, -400, 400, Z_NEAR, Z_BACKDROP)], grass, TERRAIN, KIND_GROUND)
    paving = np.full(3, rng.uniform(0.5, 0.68)) + rng.uniform(-0.04, 0.04, 3)
    for side in sides:
        e, s = side['edge'], side['sign']
        far = e + s * side['sidewalk']
        cv.fill([_ground_quad(cam, min(e, far), max(e, far))], paving, SIDEWALK, KIND_GROUND)
        curb = e + s * 0.25
        cv.fill_paint([_ground_quad(cam, min(e, curb), max(e, curb))], paving * 1.15)
    asphalt = np.full(3, rng.uniform(0.25, 0.42)) + rng.uniform(-0.02, 0.02, 3)
    cv.fill([_ground_quad(cam, left, right, Z_NEAR, Z_BACKDROP)], asphalt, ROAD, KIND_GROUND)
    paint = (0.85, 0.85, 0.82)
    marks = [_ground_quad(cam, left + 0.2, left + 0.35),
             _ground_quad(cam, right - 0.35, right - 0.2)]
    n_lanes = int(round((right - left) / 3.3))
    lane_w = (right - left) / n_lanes
    dash, gap = rng.uniform(2.5, 4), rng.uniform(4, 8)
    offset = rng.uniform(0, dash + gap)
    for k in range(1, n_lanes):
        x = left + k * lane_w
        z = Z_NEAR + offset - (dash + gap)
        while z < Z_FAR:
            marks.append(_ground_quad(cam, x - 0.08, x + 0.08, max(z, Z_NEAR), z + dash))
            z += dash + gap
    if rng.random() < 0.3:  # zebra crossing
        zc = rng.uniform(8, 30)
        x = left + 0.5
        while x < right - 0.5:
            marks.append(_ground_quad(cam, x, x + 0.5, zc, zc + 3.5))
            x += 1.0
    cv.fill_paint(marks, paint)


def _draw_side(cv, cam, rng, side) -> list:
    """Draw the row of buildings / hedge along one side; return its sprite placements."""
    s = side['sign']
    back = side['edge'] + s * (side['sidewalk'] + side['terrain'])
    sprites = []
    zone = side['zone']
    if zone == 'buildings':
        z = Z_NEAR
        while z < Z_FAR:
            length = rng.uniform(8, 25)
            if rng.random() < 0.12:  # a gap between buildings with a tree
                sprites.append((z + length / 2, 'tree', back + s * 2.0))
                z += length
                continue
            hgt = rng.uniform(6, 25)
            colour = np.clip(rng.choice([[0.55, 0.5, 0.45], [0.7, 0.66, 0.6], [0.45, 0.4, 0.38],
                                         [0.6, 0.45, 0.35], [0.75, 0.72, 0.7]])
                             * rng.uniform(0.8, 1.15) + rng.uniform(-0.04, 0.04, 3), 0, 1)
            x = back + s * rng.uniform(0.0, 1.5)
            cv.fill([_facade(cam, x, z, z + length, 0, hgt)], colour, BUILDING, KIND_FACADE, x)
            _windows(cv, cam, rng, x, z, z + length, hgt, colour)
            z += length
    elif zone == 'hedge':
        z = Z_NEAR
        green = np.array([0.15, 0.3, 0.1]) * rng.uniform(0.7, 1.3)
        while z < Z_FAR:
            length = rng.uniform(3, 10)
            hgt = rng.uniform(1.5, 9)
            x = back + s * rng.uniform(0, 1.0)
            cv.fill([_facade(cam, x, z, z + length, 0, hgt)], green, VEGETATION, KIND_FACADE, x)
            z += length
    else:  # open land: trees scattered on the terrain
        for _ in range(int(rng.integers(2, 8))):
            sprites.append((rng.uniform(8, 80), 'tree', back + s * rng.uniform(2, 25)))
    if rng.random() < 0.45:  # wall or fence along part of the side
        kind = WALL if rng.random() < 0.5 else FENCE
        z0 = rng.uniform(Z_NEAR, 30)
        z1 = z0 + rng.uniform(10, 50)
        x = back - s * 0.2
        hgt = rng.uniform(1.0, 2.4)
        if kind == WALL:
            colour = np.full(3, rng.uniform(0.45, 0.7)) * np.array([1.0, 0.97, 0.92])
            cv.fill([_facade(cam, x, z0, z1, 0, hgt)], colour, WALL, KIND_FACADE, x)
        else:
            colour = np.array([0.45, 0.4, 0.35]) * rng.uniform(0.7, 1.3)
            cv.fill([_facade(cam, x, z0, z1, 0, hgt)], colour * 0.6, FENCE, KIND_FACADE, x)
            posts = [_facade(cam, x, zz, zz + 0.15, 0, hgt) for zz in np.arange(z0, z1, 1.0)]
            rails = [_facade(cam, x, z0, z1, y, y + 0.1) for y in (0.25, hgt / 2, hgt - 0.1)]
            cv.fill_paint(posts + rails, colour)
    return sprites


def _windows(cv, cam, rng, x, z0, z1, hgt, colour) -> None:
    glass = np.clip(colour * rng.uniform(0.3, 0.55), 0, 1)
    wins, lit = [], []
    floor_h, spacing = rng.uniform(2.8, 3.4), rng.uniform(2.0, 3.5)
    for y in np.arange(1.0, hgt - 1.0, floor_h):
        for z in np.arange(z0 + 0.6, z1 - 1.4, spacing):
            quad = _facade(cam, x, z, z + 1.1, y, y + 1.4)
            (lit if rng.random() < 0.25 else wins).append(quad)
    if wins or lit:
        cv.fill_paint(wins + lit, glass)
    if lit:
        cv.glow(lit, (0.9, 0.7, 0.35))


def _place_traffic(rng, road, sides) -> list:
    left, right = road
    n_lanes = int(round((right - left) / 3.3))
    lane_w = (right - left) / n_lanes
    lanes = [left + (k + 0.5) * lane_w for k in range(n_lanes)]
    oncoming = set(range(n_lanes // 2)) if n_lanes > 1 and rng.random() < 0.8 else set()
    sprites = []
    for k, x in enumerate(lanes):
        z = rng.uniform(5, 15)
        while z < 90:
            if rng.random() < 0.6:
                r = rng.random()
                what = ('car' if r < 0.7 else 'truck' if r < 0.81 else 'bus' if r < 0.89
                        else 'tram' if r < 0.94 else 'moto')
                sprites.append((z, what, x + rng.uniform(-0.3, 0.3), k in oncoming))
            z += rng.uniform(9, 30)
    for side in sides:
        e, s = side['edge'], side['sign']
        if rng.random() < 0.5:  # parked cars along the curb
            for z in np.cumsum(rng.uniform(5.5, 12, int(rng.integers(1, 6)))) + rng.uniform(4, 20):
                sprites.append((z, 'car', e - s * 1.1, False))
        walk0, walk1 = e + s * 0.6, e + s * (side['sidewalk'] - 0.3)
        for _ in range(int(rng.integers(0, 6))):
            sprites.append((rng.uniform(4, 50), 'person', rng.uniform(min(walk0, walk1),
                                                                      max(walk0, walk1))))
        for _ in range(int(rng.integers(0, 3))):
            ridden = rng.random() < 0.6
            xb = e - s * 1.2 if ridden else e + s * (side['sidewalk'] - 0.6)
            sprites.append((rng.uniform(5, 40), 'bicycle', xb, ridden))
        z = rng.uniform(3, 15)
        while z < 90:
            r = rng.random()
            what = 'lamp' if r < 0.5 else 'pole' if r < 0.62 else 'sign' if r < 0.82 else 'light'
            sprites.append((z, what, e + s * 0.45, s))
            z += rng.uniform(10, 28)
        if side['sidewalk'] > 3.0 and rng.random() < 0.6:
            for z in np.arange(rng.uniform(4, 10), 80, rng.uniform(8, 16)):
                sprites.append((z, 'tree', e + s * (side['sidewalk'] - 1.0)))
    if rng.random() < 0.3:
        sprites.append((rng.uniform(6, 20), 'person', rng.uniform(left + 0.5, right - 0.5)))
    return sprites, lanes


def _draw_sprite(cv, cam, rng, item) -> None:
    z, what, x = item[0], item[1], item[2]
    if what == 'car':
        obj.car(cv, cam, rng, x, z, item[3])
    elif what == 'truck':
        obj.truck(cv, cam, rng, x, z, item[3])
    elif what == 'bus':
        obj.bus(cv, cam, rng, x, z, item[3])
    elif what == 'tram':
        obj.tram(cv, cam, rng, x, z, item[3])
    elif what == 'moto':
        obj.motorcycle(cv, cam, rng, x, z)
    elif what == 'person':
        obj.person(cv, cam, rng, x, z)
    elif what == 'bicycle':
        obj.bicycle(cv, cam, rng, x, z, 1 if rng.random() < 0.5 else -1, item[3])
    elif what == 'tree':
        obj.tree(cv, cam, rng, x, z)
    elif what == 'lamp':
        obj.street_lamp(cv, cam, rng, x, z, item[3])
    elif what == 'pole':
        obj.pole(cv, cam, rng, x, z, rng.uniform(3, 8))
    elif what == 'sign':
        obj.traffic_sign(cv, cam, rng, x, z)
    else:
        obj.traffic_light(cv, cam, rng, x, z)


def _texture(cv: Canvas, rng: np.random.Generator) -> None:
    h, w = cv.height, cv.width
    fine = rng.standard_normal((h, w), dtype=np.float32)
    mid = cv2.resize(rng.standard_normal((max(h // 12, 2), max(w // 12, 2)), dtype=np.float32),
                     (w, h), interpolation=cv2.INTER_LINEAR)
    amp = _TEXTURE[cv.label]
    cv.image *= (1.0 + amp[..., 0] * fine + amp[..., 1] * mid)[..., None]


def render_scene(size: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Draw one random clear-weather driving scene.

    Args:
        size: (width, height) in pixels.
        rng: the generator every random choice is drawn from.

    Returns:
        The scene (image, labels, depth, lights).
    """
    w, h = size
    cam = Camera(focal=w * rng.uniform(0.75, 1.0), cx=w * rng.uniform(0.42, 0.58),
                 horizon=h * rng.uniform(0.36, 0.5), height=rng.uniform(1.3, 1.7))
    cv = Canvas(w, h)
    n_lanes = int(rng.choice([2, 2, 3, 4]))
    lane_w = 3.3
    ego = int(rng.integers(n_lanes // 2, n_lanes)) if n_lanes > 1 else 0
    left = -(ego + 0.5) * lane_w + rng.uniform(-0.5, 0.5)
    road = (left, left + n_lanes * lane_w)
    sides = []
    for sign, edge in ((-1, road[0]), (1, road[1])):
        zone = rng.choice(['buildings', 'hedge', 'open'], p=[0.6, 0.22, 0.18])
        sides.append({'sign': sign, 'edge': edge, 'sidewalk': rng.uniform(1.5, 5.0),
                      'terrain': rng.uniform(0.5, 4.0) if rng.random() < 0.4 else 0.0,
                      'zone': str(zone)})
    _draw_sky_and_backdrop(cv, cam, rng)
    _draw_ground(cv, cam, rng, road, sides)
    sprites = []
    for side in sides:
        sprites += _draw_side(cv, cam, rng, side)
    traffic, lanes = _place_traffic(rng, road, sides)
    sprites += traffic
    for item in sorted(sprites, key=lambda it: -it[0]):
        _draw_sprite(cv, cam, rng, item)
    _texture(cv, rng)
    image = cv2.GaussianBlur(cv.image, (3, 3), 0.6)
    image = np.clip(image * rng.uniform(0.85, 1.1), 0, 1)
    return Scene(image, cv.label, cv.depth(cam), cam, cv.emissive, cv.lamps, lanes)

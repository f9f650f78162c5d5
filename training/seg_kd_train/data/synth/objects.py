"""Things standing in the street, drawn fronto-parallel at a depth: vehicles, people, poles, trees.

Each function draws one object whose ground contact point is (x, 0, z) in world metres; the
object's parts carry their Cityscapes trainIds (wheels and windows belong to the vehicle, a lamp
head to its pole, a tree trunk to vegetation).
"""

import numpy as np

from seg_kd_train.data.cityscapes_labels import TRAIN_IDS
from seg_kd_train.data.synth.canvas import (
    KIND_SPRITE,
    Camera,
    Canvas,
    bar,
    ellipse_poly,
    rect,
    ring_polys,
)

POLE, LIGHT, SIGN, VEGETATION = (TRAIN_IDS[n] for n in ('pole', 'traffic light', 'traffic sign',
                                                       'vegetation'))
PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE = (TRAIN_IDS[n] for n in (
    'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle', 'bicycle'))

CAR_COLOURS = np.array([
    [0.9, 0.9, 0.9], [0.08, 0.08, 0.09], [0.55, 0.56, 0.58], [0.6, 0.08, 0.07],
    [0.1, 0.2, 0.5], [0.3, 0.32, 0.35], [0.75, 0.72, 0.65], [0.15, 0.35, 0.2],
], np.float32)
CLOTHES = np.array([
    [0.1, 0.1, 0.12], [0.2, 0.25, 0.45], [0.6, 0.1, 0.1], [0.8, 0.75, 0.6],
    [0.3, 0.3, 0.3], [0.15, 0.4, 0.2], [0.9, 0.9, 0.88], [0.5, 0.35, 0.2],
], np.float32)
SKIN = np.array([[0.85, 0.68, 0.55], [0.6, 0.42, 0.3], [0.35, 0.24, 0.17]], np.float32)
DARK = (0.04, 0.04, 0.045)
GLASS = (0.12, 0.15, 0.18)


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float = 0.05) -> np.ndarray:
    colour = table[int(rng.integers(len(table)))] + rng.uniform(-jitter, jitter, 3)
    return np.clip(colour, 0, 1)


def _shadow(cv: Canvas, cam: Camera, x: float, z: float, half_w: float, depth: float) -> None:
    pts = cam.project(np.array([x - half_w, x + half_w, x + half_w, x - half_w]),
                      np.zeros(4), np.array([z, z, z + depth, z + depth]))
    cv.paint_ground([pts], (0.06, 0.06, 0.06))


def car(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
        facing_camera: bool) -> None:
    """A car seen from behind (tail lights) or from the front (headlights)."""
    w, h = rng.uniform(1.7, 1.95), rng.uniform(1.4, 1.75)
    body = _pick(rng, CAR_COLOURS)
    _shadow(cv, cam, x, z, w / 2 + 0.1, 2.0)
    polys = [rect(cam, x - w / 2 + 0.1, x - w / 2 + 0.4, 0, 0.5, z),
             rect(cam, x + w / 2 - 0.4, x + w / 2 - 0.1, 0, 0.5, z)]
    cv.fill(polys, DARK, CAR, KIND_SPRITE, z)
    lower = rect(cam, x - w / 2, x + w / 2, 0.2, 0.58 * h, z)
    top_w = w * rng.uniform(0.68, 0.8) / 2
    cabin = cam.project(np.array([x - w * 0.48, x + w * 0.48, x + top_w, x - top_w]),
                        np.array([0.58 * h, 0.58 * h, h, h]), z)
    cv.fill([lower, cabin], body, CAR, KIND_SPRITE, z)
    win = cam.project(np.array([x - w * 0.42, x + w * 0.42, x + top_w - 0.08, x - top_w + 0.08]),
                      np.array([0.62 * h, 0.62 * h, 0.95 * h, 0.95 * h]), z)
    cv.fill_paint([win], GLASS)
    cv.fill_paint([rect(cam, x - 0.26, x + 0.26, 0.28, 0.4, z)], (0.92, 0.92, 0.85))
    lamp_col = (1.0, 0.95, 0.8) if facing_camera else (0.75, 0.05, 0.03)
    lamps = [rect(cam, x - w / 2 + 0.08, x - w / 2 + 0.38, 0.45 * h, 0.55 * h, z),
             rect(cam, x + w / 2 - 0.38, x + w / 2 - 0.08, 0.45 * h, 0.55 * h, z)]
    cv.fill_paint(lamps, lamp_col)
    glow = (3.0, 2.8, 2.2) if facing_camera else (1.6, 0.1, 0.05)
    cv.glow(lamps, glow)


def truck(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
          facing_camera: bool) -> None:
    """A lorry: a tall cargo box from behind, or a cab with a big windscreen from the front."""
    w, h = 2.5, rng.uniform(3.0, 3.8)
    box = _pick(rng, CAR_COLOURS[[0, 2, 3, 4, 6]], 0.08)
    _shadow(cv, cam, x, z, w / 2 + 0.1, 5.0)
    wheels = [rect(cam, x - w / 2 + 0.05, x - w / 2 + 0.6, 0, 0.95, z),
              rect(cam, x + w / 2 - 0.6, x + w / 2 - 0.05, 0, 0.95, z)]
    cv.fill(wheels, DARK, TRUCK, KIND_SPRITE, z)
    cv.fill([rect(cam, x - w / 2 + 0.2, x + w / 2 - 0.2, 0.4, 1.0, z)], (0.12, 0.12, 0.12),
            TRUCK, KIND_SPRITE, z)
    cv.fill([rect(cam, x - w / 2, x + w / 2, 1.0, h, z)], box, TRUCK, KIND_SPRITE, z)
    if facing_camera:
        cv.fill_paint([rect(cam, x - w / 2 + 0.15, x + w / 2 - 0.15, 1.9, 2.7, z)], GLASS)
        cv.fill_paint([rect(cam, x - 0.7, x + 0.7, 1.1, 1.6, z)], (0.2, 0.2, 0.22))
        lamps = [rect(cam, x - w / 2 + 0.1, x - w / 2 + 0.45, 1.1, 1.3, z),
                 rect(cam, x + w / 2 - 0.45, x + w / 2 - 0.1, 1.1, 1.3, z)]
        cv.fill_paint(lamps, (1.0, 0.95, 0.8))
        cv.glow(lamps, (3.0, 2.8, 2.2))
    else:
        cv.fill_paint([rect(cam, x - 0.02, x + 0.02, 1.1, h - 0.1, z)], box * 0.6)
        lamps = [rect(cam, x - w / 2 + 0.1, x - w / 2 + 0.35, 1.05, 1.25, z),
                 rect(cam, x + w / 2 - 0.35, x + w / 2 - 0.1, 1.05, 1.25, z)]
        cv.fill_paint(lamps, (0.75, 0.05, 0.03))
        cv.glow(lamps, (1.6, 0.1, 0.05))


def bus(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
        facing_camera: bool) -> None:
    """A bus: a tall box with a large windscreen and a lit destination display."""
    w, h = 2.55, rng.uniform(3.0, 3.4)
    colours = np.array([[0.85, 0.7, 0.1], [0.75, 0.1, 0.1], [0.1, 0.3, 0.65],
                        [0.88, 0.88, 0.88]], np.float32)
    body = _pick(rng, colours, 0.05)
    _shadow(cv, cam, x, z, w / 2 + 0.1, 8.0)
    cv.fill([rect(cam, x - w / 2, x + w / 2, 0.25, h, z)], body, BUS, KIND_SPRITE, z)
    cv.fill([rect(cam, x - w / 2 + 0.1, x - w / 2 + 0.55, 0, 0.3, z),
             rect(cam, x + w / 2 - 0.55, x + w / 2 - 0.1, 0, 0.3, z)], DARK, BUS, KIND_SPRITE, z)
    top = 1.25 if facing_camera else 1.9
    cv.fill_paint([rect(cam, x - w / 2 + 0.12, x + w / 2 - 0.12, top, h - 0.45, z)], GLASS)
    display = rect(cam, x - w / 2 + 0.3, x + w / 2 - 0.3, h - 0.38, h - 0.1, z)
    cv.fill_paint([display], (0.95, 0.6, 0.1))
    cv.glow([display], (1.2, 0.7, 0.1))
    lamp_col = (1.0, 0.95, 0.8) if facing_camera else (0.75, 0.05, 0.03)
    lamps = [rect(cam, x - w / 2 + 0.1, x - w / 2 + 0.4, 0.5, 0.75, z),
             rect(cam, x + w / 2 - 0.4, x + w / 2 - 0.1, 0.5, 0.75, z)]
    cv.fill_paint(lamps, lamp_col)
    cv.glow(lamps, (3.0, 2.8, 2.2) if facing_camera else (1.6, 0.1, 0.05))


def tram(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
         facing_camera: bool) -> None:
    """A tram (Cityscapes 'train'): two-tone body, split windscreen, pantograph on the roof."""
    w, h = 2.4, rng.uniform(3.3, 3.6)
    colours = np.array([[0.9, 0.9, 0.88], [0.85, 0.8, 0.2], [0.2, 0.45, 0.3]], np.float32)
    body = _pick(rng, colours, 0.04)
    band = np.array([0.7, 0.1, 0.1]) if rng.random() < 0.5 else np.array([0.15, 0.2, 0.5])
    rails = [cam.project(np.array([r - 0.05, r + 0.05, r + 0.05, r - 0.05]), np.zeros(4),
                         np.array([0.5, 0.5, z, z])) for r in (x - 0.75, x + 0.75)]
    cv.paint_ground(rails, (0.55, 0.55, 0.55))  # rails on the road surface (still road)
    _shadow(cv, cam, x, z, w / 2 + 0.1, 10.0)
    roof = cam.project(np.array([x - w / 2, x + w / 2, x + w / 2 - 0.3, x - w / 2 + 0.3]),
                       np.array([h - 0.3, h - 0.3, h, h]), z)
    cv.fill([rect(cam, x - w / 2, x + w / 2, 0.1, h - 0.3, z), roof], body, TRAIN,
            KIND_SPRITE, z)
    pant = [bar(cam, (x - 0.5, h), (x + 0.3, h + 0.9), 0.06, z),
            bar(cam, (x + 0.3, h + 0.9), (x - 0.3, h + 1.4), 0.06, z),
            bar(cam, (x - 0.7, h + 1.4), (x + 0.7, h + 1.4), 0.06, z)]
    cv.fill(pant, (0.15, 0.15, 0.15), TRAIN, KIND_SPRITE, z)
    cv.fill_paint([rect(cam, x - w / 2, x + w / 2, 0.5, 1.0, z)], band)
    cv.fill_paint([rect(cam, x - w / 2 + 0.15, x - 0.05, 1.3, h - 0.5, z),
                   rect(cam, x + 0.05, x + w / 2 - 0.15, 1.3, h - 0.5, z)], GLASS)
    lamps = [rect(cam, x - w / 2 + 0.15, x - w / 2 + 0.4, 0.7, 0.85, z),
             rect(cam, x + w / 2 - 0.4, x + w / 2 - 0.15, 0.7, 0.85, z)]
    cv.fill_paint(lamps, (1.0, 0.95, 0.8) if facing_camera else (0.75, 0.05, 0.03))
    cv.glow(lamps, (3.0, 2.8, 2.2) if facing_camera else (1.6, 0.1, 0.05))


def person(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
           label: int = PERSON, base: float = 0.0, seated: bool = False) -> None:
    """A pedestrian (or, with label=RIDER and seated=True, the rider of a two-wheeler)."""
    hgt = rng.uniform(1.55, 1.9)
    top, trousers = _pick(rng, CLOTHES), _pick(rng, CLOTHES)
    skin = _pick(rng, SKIN, 0.03)
    hip = base + (0.0 if seated else 0.5 * hgt)
    shoulder = hip + 0.32 * hgt
    if not seated:
        stride = rng.uniform(0.0, 0.25)
        legs = [bar(cam, (x - 0.08, hip), (x - 0.08 - stride, 0), 0.15, z),
                bar(cam, (x + 0.08, hip), (x + 0.08 + stride, 0), 0.15, z)]
        cv.fill(legs, trousers, label, KIND_SPRITE, z)
    else:
        legs = [bar(cam, (x - 0.15, hip), (x - 0.2, base - 0.45), 0.15, z),
                bar(cam, (x + 0.15, hip), (x + 0.2, base - 0.45), 0.15, z)]
        cv.fill(legs, trousers, label, KIND_SPRITE, z)
    swing = rng.uniform(0.0, 0.12)
    arms = [bar(cam, (x - 0.2, shoulder), (x - 0.27 - swing, hip - 0.05), 0.1, z),
            bar(cam, (x + 0.2, shoulder), (x + 0.27 + swing, hip - 0.05), 0.1, z)]
    cv.fill(arms, top * 0.9, label, KIND_SPRITE, z)
    cv.fill([rect(cam, x - 0.2, x + 0.2, hip - 0.03, shoulder, z)], top, label, KIND_SPRITE, z)
    head_c = shoulder + 0.15
    cv.fill([ellipse_poly(cam, x, head_c, 0.1, 0.12, z, 12)], skin, label, KIND_SPRITE, z)
    cv.fill_paint([ellipse_poly(cam, x, head_c + 0.05, 0.105, 0.075, z, 12)], _pick(rng, CLOTHES))


def bicycle(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
            facing: int, ridden: bool) -> None:
    """A bicycle in side view (two spoked rings and a frame), optionally with its rider."""
    r, half = 0.34, 0.55
    frame = _pick(rng, CAR_COLOURS, 0.05)
    rear, front = x - facing * half, x + facing * half
    wheels = ring_polys(cam, rear, r, r, 0.06, z) + ring_polys(cam, front, r, r, 0.06, z)
    cv.fill(wheels, DARK, BICYCLE, KIND_SPRITE, z)
    seat = (x - facing * 0.2, 0.95)
    bars = [bar(cam, (rear, r), seat, 0.05, z),
            bar(cam, (rear, r), (x + facing * 0.05, r), 0.05, z),
            bar(cam, (x + facing * 0.05, r), seat, 0.05, z),
            bar(cam, (x + facing * 0.05, r), (front - facing * 0.1, 0.9), 0.05, z),
            bar(cam, seat, (front - facing * 0.1, 0.9), 0.05, z),
            bar(cam, (front, r), (front - facing * 0.12, 1.0), 0.05, z)]
    cv.fill(bars, frame, BICYCLE, KIND_SPRITE, z)
    if ridden:
        person(cv, cam, rng, x - facing * 0.1, z - 0.05, RIDER, base=0.95, seated=True)


def motorcycle(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float) -> None:
    """A motorcycle seen from behind with its rider."""
    cv.fill([rect(cam, x - 0.07, x + 0.07, 0, 0.6, z)], DARK, MOTORCYCLE, KIND_SPRITE, z)
    body = _pick(rng, CAR_COLOURS, 0.05)
    cv.fill([rect(cam, x - 0.32, x + 0.32, 0.45, 0.95, z)], body, MOTORCYCLE, KIND_SPRITE, z)
    lamp = [rect(cam, x - 0.08, x + 0.08, 0.7, 0.8, z)]
    cv.fill_paint(lamp, (0.75, 0.05, 0.03))
    cv.glow(lamp, (1.6, 0.1, 0.05))
    person(cv, cam, rng, x, z - 0.05, RIDER, base=0.95, seated=True)


def pole(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
         height: float) -> None:
    """A plain grey pole."""
    grey = rng.uniform(0.35, 0.6)
    cv.fill([rect(cam, x - 0.08, x + 0.08, 0, height, z)], (grey, grey, grey * 1.02), POLE,
            KIND_SPRITE, z)


def street_lamp(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float,
                side: int) -> None:
    """A lamp post leaning over the road (`side` = +1 right of the road, -1 left)."""
    hgt = rng.uniform(6.0, 8.5)
    pole(cv, cam, rng, x, z, hgt)
    head_x = x - side * rng.uniform(1.2, 2.0)
    cv.fill([bar(cam, (x, hgt - 0.2), (head_x, hgt + 0.2), 0.12, z)], (0.4, 0.4, 0.42), POLE,
            KIND_SPRITE, z)
    head = ellipse_poly(cam, head_x, hgt + 0.1, 0.35, 0.12, z, 12)
    cv.fill([head], (0.75, 0.75, 0.7), POLE, KIND_SPRITE, z)
    cv.glow([head], (4.0, 3.4, 2.2))
    u, v = cam.project(head_x, 0.0, z)
    cv.lamps.append((float(u), float(v), float(cam.scale(z) * 6.0)))


def traffic_light(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float,
                  z: float) -> None:
    """A traffic light on a pole: a dark housing with one lit lamp."""
    hgt = rng.uniform(2.8, 3.6)
    pole(cv, cam, rng, x, z, hgt - 0.9)
    housing = (0.08, 0.08, 0.08) if rng.random() < 0.7 else (0.55, 0.45, 0.1)
    cv.fill([rect(cam, x - 0.18, x + 0.18, hgt - 1.0, hgt, z)], housing, LIGHT, KIND_SPRITE, z)
    lit = int(rng.integers(3))
    colours = [(1.0, 0.1, 0.05), (1.0, 0.7, 0.1), (0.1, 1.0, 0.5)]
    for i in range(3):
        yc = hgt - 0.17 - 0.32 * i
        circle = ellipse_poly(cam, x, yc, 0.11, 0.11, z, 10)
        on = i == lit
        col = colours[i] if on else tuple(0.25 * c for c in colours[i])
        cv.fill_paint([circle], col)
        if on:
            cv.glow([circle], tuple(2.5 * c for c in colours[i]))


def traffic_sign(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float) -> None:
    """A road sign on a pole: round (red rim), triangular or a blue square."""
    hgt = rng.uniform(2.2, 3.0)
    pole(cv, cam, rng, x, z, hgt - 0.3)
    shape = int(rng.integers(3))
    yc = hgt
    if shape == 0:
        cv.fill([ellipse_poly(cam, x, yc, 0.35, 0.35, z)], (0.8, 0.05, 0.05), SIGN,
                KIND_SPRITE, z)
        cv.fill_paint([ellipse_poly(cam, x, yc, 0.26, 0.26, z)], (0.95, 0.95, 0.95))
    elif shape == 1:
        tri = cam.project(np.array([x - 0.4, x + 0.4, x]),
                          np.array([yc - 0.3, yc - 0.3, yc + 0.4]), z)
        cv.fill([tri], (0.8, 0.05, 0.05), SIGN, KIND_SPRITE, z)
        inner = cam.project(np.array([x - 0.27, x + 0.27, x]),
                            np.array([yc - 0.22, yc - 0.22, yc + 0.24]), z)
        cv.fill_paint([inner], (0.95, 0.95, 0.9))
    else:
        cv.fill([rect(cam, x - 0.32, x + 0.32, yc - 0.32, yc + 0.32, z)], (0.05, 0.25, 0.7),
                SIGN, KIND_SPRITE, z)
        cv.fill_paint([rect(cam, x - 0.06, x + 0.06, yc - 0.22, yc + 0.22, z)], (0.95, 0.95, 0.95))


def tree(cv: Canvas, cam: Camera, rng: np.random.Generator, x: float, z: float) -> None:
    """A tree: trunk and a crown of overlapping leafy blobs (all vegetation)."""
    trunk_h = rng.uniform(1.8, 3.0)
    crown_r = rng.uniform(1.2, 2.6)
    cv.fill([rect(cam, x - 0.13, x + 0.13, 0, trunk_h + 0.5, z)], (0.3, 0.22, 0.14), VEGETATION,
            KIND_SPRITE, z)
    green = np.array([0.18, 0.32, 0.1]) * rng.uniform(0.7, 1.3) + rng.uniform(-0.03, 0.03, 3)
    blobs = []
    for _ in range(int(rng.integers(4, 8))):
        cx = x + rng.uniform(-0.6, 0.6) * crown_r
        cy = trunk_h + crown_r + rng.uniform(-0.5, 0.6) * crown_r
        r = crown_r * rng.uniform(0.5, 0.8)
        blobs.append(ellipse_poly(cam, cx, cy, r, r * rng.uniform(0.8, 1.1), z, 14))
    cv.fill(blobs, np.clip(green, 0, 1), VEGETATION, KIND_SPRITE, z)

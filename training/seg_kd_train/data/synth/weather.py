"""Adverse-weather renderings of a scene: fog, night, rain, snow (and clear).

Each effect takes a float32 RGB image in [0, 1] with a depth map (metres) and, where known, the
trainIds, and returns the degraded image; the labels never change. `render_condition` works on a
synthetic `Scene` (exact depth, lights, surfaces); `augment_weather` applies the same effects to a
real uint8 image with a depth guessed from the image rows (ground plane below a horizon).

- fog: Koschmieder scattering, I = J t + A (1 - t), t = exp(-beta d), beta varying in space.
- night: low ambient light, gamma, blue tint, street-lamp pools, ego headlights, glowing lamps,
  lit windows, sensor noise.
- rain: overcast dimming, wet (darker) road and sidewalks with mirrored reflections, haze, streaks,
  drops on the lens.
- snow: white cover on horizontal surfaces (ground with tyre tracks, tops of objects), snowy trees,
  lower contrast, white haze, falling flakes.
"""

import cv2
import numpy as np

from seg_kd_train.data.cityscapes_labels import TRAIN_IDS
from seg_kd_train.data.synth.canvas import SKY_DEPTH

CONDITIONS = ('clear', 'fog', 'night', 'rain', 'snow')
ROAD, SIDEWALK, VEGETATION, TERRAIN = (TRAIN_IDS[n] for n in (
    'road', 'sidewalk', 'vegetation', 'terrain'))
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _low_freq(rng: np.random.Generator, h: int, w: int, cells: int = 6) -> np.ndarray:
    """Smooth noise in about [-1, 1] with `cells` blobs across the width."""
    small = rng.uniform(-1, 1, (max(2, cells * h // w), cells)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _haze(image, depth, beta, airlight):
    t = np.exp(-beta * np.minimum(depth, SKY_DEPTH))[..., None]
    return image * t + np.asarray(airlight, np.float32) * (1 - t), t[..., 0]


def fog(image, depth, rng):
    """Dense fog: returns (image, transmission)."""
    h, w = depth.shape
    beta = rng.uniform(0.025, 0.09) * np.exp(0.35 * _low_freq(rng, h, w, 4))
    grey = rng.uniform(0.68, 0.9)
    airlight = grey + rng.uniform(-0.02, 0.02, 3)
    out, t = _haze(image * rng.uniform(0.75, 0.95), depth, beta, airlight)
    out = cv2.GaussianBlur(out, (0, 0), 0.8)
    return out, t


def night(image, depth, rng, emissive=None, lamps=(), focal=None, cx=None):
    """Night: returns the image lit by its own light sources and the ego headlights."""
    h, w = depth.shape
    focal = w if focal is None else focal
    cx = w / 2 if cx is None else cx
    ambient = rng.uniform(0.04, 0.12) * np.array([0.8, 0.85, 1.15], np.float32)
    light = np.broadcast_to(ambient, (h, w, 3)).copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warm = np.array([1.0, 0.8, 0.5], np.float32)
    for u, v, r in lamps:
        if r < 1 or v > 3 * h:
            continue
        pool = np.exp(-(((xx - u) / r) ** 2 + ((yy - v) / (0.35 * r)) ** 2))
        pool += 0.3 * np.exp(-(((xx - u) / (0.5 * r)) ** 2) - ((yy - v + r) / (1.2 * r)) ** 2)
        light += rng.uniform(0.4, 0.9) * pool[..., None] * warm
    near = np.minimum(depth, 200.0)
    lateral = (xx - cx) * near / focal
    beam = np.exp(-near / rng.uniform(12, 25)) * np.exp(-((lateral / (0.3 * near + 1.5)) ** 2))
    light += rng.uniform(0.6, 1.2) * beam[..., None] * np.array([1.0, 0.97, 0.9], np.float32)
    out = np.power(np.clip(image, 0, 1), rng.uniform(1.2, 1.6)) * light
    sky = depth >= SKY_DEPTH
    if sky.any():
        glow_rows = np.clip(1 - yy / max(h * 0.5, 1), 0, 1)
        sky_col = np.array([0.02, 0.025, 0.06], np.float32) + (1 - glow_rows[..., None]) * \
            np.array([0.08, 0.05, 0.03], np.float32) * rng.uniform(0.3, 1.0)
        out = np.where(sky[..., None], sky_col, out)
    if emissive is not None and emissive.any():
        small = cv2.GaussianBlur(emissive, (0, 0), 0.008 * w + 0.5)
        large = cv2.GaussianBlur(emissive, (0, 0), 0.035 * w + 0.5)
        out = out + emissive * 0.5 + 0.8 * small + 0.5 * large
    noise = rng.uniform(0.012, 0.035)
    out = out + rng.standard_normal(out.shape, dtype=np.float32) * noise * \
        np.sqrt(np.clip(out, 0.02, 1) * 4)
    return cv2.GaussianBlur(np.clip(out, 0, 1), (0, 0), 0.6)


def _reflection(image, depth, label, horizon, focal, cam_height):
    """Mirror of upright things in the wet ground plane (forward-splat about their contact row)."""
    h, w = depth.shape
    sky_col = image[: max(1, int(horizon) // 2)].reshape(-1, 3).mean(axis=0)
    refl = np.broadcast_to(sky_col, image.shape).copy()
    flat = np.isin(label, (ROAD, SIDEWALK, TERRAIN)) | (depth >= SKY_DEPTH)
    ys, xs = np.nonzero(~flat)
    if ys.size:
        z = depth[ys, xs]
        target = np.round(2 * (horizon + focal * cam_height / z) - ys).astype(np.int64)
        ok = (target >= 0) & (target < h)
        ys, xs, z, target = ys[ok], xs[ok], z[ok], target[ok]
        order = np.argsort(-z, kind='stable')
        ys, xs, target = ys[order], xs[order], target[order]
        refl[target, xs] = image[ys, xs]
    return cv2.blur(refl, (3, 15))


def rain(image, depth, rng, label=None, horizon=None, focal=None, cam_height=1.5):
    """Rain: overcast, wet surfaces with reflections, haze, streaks and lens drops."""
    h, w = depth.shape
    horizon = 0.45 * h if horizon is None else horizon
    focal = w if focal is None else focal
    grey = image @ _LUMA
    out = 0.7 * image + 0.3 * grey[..., None]
    out = out * rng.uniform(0.55, 0.8)
    if label is not None:
        wet = np.isin(label, (ROAD, SIDEWALK)).astype(np.float32)
        refl = _reflection(out, depth, label, horizon, focal, cam_height)
    else:
        wet = (np.arange(h)[:, None] > horizon + 0.1 * h).astype(np.float32) * np.ones((1, w))
        refl = cv2.blur(out[::-1], (3, 15))
    puddles = np.clip(0.55 + 0.6 * _low_freq(rng, h, w, 8), 0, 1) * wet
    strength = rng.uniform(0.3, 0.6)
    out = out * (1 - 0.35 * wet[..., None]) + strength * puddles[..., None] * (refl - 0.3 * out)
    out, _ = _haze(out, depth, rng.uniform(0.006, 0.02), rng.uniform(0.45, 0.65))
    layer = np.zeros((h, w), np.float32)
    n = int(rng.uniform(400, 1400) * h * w / 131072)
    angle = rng.uniform(-0.35, 0.35)
    x0 = rng.uniform(0, w, n)
    y0 = rng.uniform(-0.1 * h, h, n)
    length = rng.uniform(0.03, 0.09, n) * h
    pts = np.stack([np.stack([x0, y0], -1), np.stack([x0 + np.sin(angle + rng.normal(0, 0.04, n))
                                                      * length, y0 + length], -1)], 1)
    cv2.polylines(layer, np.round(pts).astype(np.int32), False, 1.0, 1)
    layer = cv2.GaussianBlur(layer, (0, 0), 0.7) * rng.uniform(0.15, 0.35)
    out = out + layer[..., None]
    drops = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(0, 8))):
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(drops, centre, int(rng.uniform(0.02, 0.06) * h) + 1, 1.0, -1)
    if drops.any():
        drops = cv2.GaussianBlur(drops, (0, 0), 2.0)[..., None]
        out = out * (1 - drops) + cv2.GaussianBlur(out, (0, 0), 0.02 * w + 1) * drops
    return np.clip(out, 0, 1)


def _caps(depth, focal, thickness_m=0.15, max_px=6):
    """Pixels at the top of an upright object (the pixel above is much farther)."""
    caps = np.zeros(depth.shape, bool)
    thick = np.clip(thickness_m * focal / np.maximum(depth, 0.1), 1, max_px)
    for k in range(1, max_px + 1):
        above = np.empty_like(depth)
        above[:k] = SKY_DEPTH
        above[k:] = depth[:-k]
        caps |= (above > 1.3 * depth) & (k <= thick) & (depth < SKY_DEPTH)
    return caps


def snow(image, depth, rng, label=None, focal=None, cx=None, lane_x=()):
    """Snow: white cover on the ground and on top of objects, haze, flakes, low contrast."""
    h, w = depth.shape
    focal = w if focal is None else focal
    cx = w / 2 if cx is None else cx
    white = np.array([0.92, 0.94, 0.97], np.float32) * rng.uniform(0.82, 1.0)
    fine = rng.standard_normal((h, w), dtype=np.float32)
    lf = _low_freq(rng, h, w, 10)
    out = image * 0.8 + 0.2 * (image @ _LUMA).mean()
    if label is not None:
        ground_cover = np.clip(rng.uniform(0.6, 0.95) + 0.5 * lf, 0, 1)
        road_cover = np.clip(rng.uniform(0.15, 0.7) + 0.6 * lf, 0, 1)
        xx = np.arange(w, dtype=np.float32)[None, :]
        lateral = (xx - cx) * np.minimum(depth, 200) / focal
        tracks = np.zeros((h, w), np.float32)
        for lx in lane_x:
            for off in (-0.8, 0.8):
                tracks = np.maximum(tracks, np.exp(-(((lateral - lx - off) / 0.3) ** 2)))
        cover = np.where(np.isin(label, (SIDEWALK, TERRAIN)), ground_cover, 0)
        cover = np.where(label == ROAD, road_cover * (1 - 0.85 * tracks), cover)
        cover = np.maximum(cover, _caps(depth, focal) * 0.95)
        cover = np.where(label == VEGETATION, np.clip(0.35 + 0.5 * fine, 0, 0.9), cover)
    else:
        rows = np.clip((np.arange(h, dtype=np.float32)[:, None] - 0.5 * h) / (0.5 * h), 0, 1)
        cover = np.clip(rows * (0.5 + 0.6 * lf), 0, 0.95)
    snow_px = white * (1 + 0.04 * fine[..., None])
    out = out * (1 - cover[..., None]) + snow_px * cover[..., None]
    out, _ = _haze(out, depth, rng.uniform(0.01, 0.035), white * rng.uniform(0.85, 0.98))
    layer = np.zeros((h, w), np.float32)
    n = int(rng.uniform(300, 1500) * h * w / 131072)
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
    radius = np.minimum(rng.pareto(2.5, n) * 0.8 + 0.5, 4)
    for x, y, r in zip(xs, ys, radius, strict=True):
        cv2.circle(layer, (int(x), int(y)), int(r), 1.0, -1)
    layer = np.clip(cv2.GaussianBlur(layer, (0, 0), 0.8), 0, 1)[..., None] * 0.85
    out = out * (1 - layer) + white * layer
    return np.clip(out, 0, 1)


def render_condition(scene, condition: str, rng: np.random.Generator):
    """Render a synthetic scene under a condition.

    Args:
        scene: a `seg_kd_train.data.synth.scene.Scene`.
        condition: one of CONDITIONS.
        rng: generator for the effect's random parameters.

    Returns:
        (HxWx3 uint8 RGB, HxW uint8 invalid mask: 1 where the image no longer shows the class,
        e.g. beyond the fog's visibility or in darkness).
    """
    img, depth, cam = scene.image, scene.depth, scene.camera
    invalid = np.zeros(depth.shape, bool)
    solid = depth < SKY_DEPTH
    if condition == 'clear':
        out = img
    elif condition == 'fog':
        out, t = fog(img, depth, rng)
        invalid = solid & (t < 0.03)
    elif condition == 'night':
        out = night(img, depth, rng, scene.emissive, scene.lamps, cam.focal, cam.cx)
        invalid = solid & (cv2.blur(out @ _LUMA, (5, 5)) < 0.015)
    elif condition == 'rain':
        out = rain(img, depth, rng, scene.label, cam.horizon, cam.focal, cam.height)
    elif condition == 'snow':
        out = snow(img, depth, rng, scene.label, cam.focal, cam.cx, scene.lane_x)
    else:
        raise ValueError(f'unknown condition {condition!r}; expected one of {CONDITIONS}')
    return to_uint8(out), invalid.astype(np.uint8)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float RGB -> uint8."""
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def pseudo_depth(h: int, w: int, horizon: float | None = None) -> np.ndarray:
    """A depth guess for a real road image: flat ground below the horizon, far above it."""
    horizon = 0.45 * h if horizon is None else horizon
    rows = np.arange(h, dtype=np.float32)[:, None] - horizon
    ground = w * 1.5 / np.maximum(rows, 1.0)
    above = 60.0 + 150.0 * np.clip(-rows / max(horizon, 1.0), 0, 1)
    return np.broadcast_to(np.where(rows > 1, np.minimum(ground, 200.0), above), (h, w)).copy()


def augment_weather(image: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    """Apply a weather effect to a real HxWx3 uint8 RGB image (labels unchanged).

    Depth is guessed from the rows, light sources from the brightest pixels.
    """
    if condition not in CONDITIONS:
        raise ValueError(f'unknown condition {condition!r}; expected one of {CONDITIONS}')
    h, w = image.shape[:2]
    img = image.astype(np.float32) / 255.0
    depth = pseudo_depth(h, w)
    if condition == 'fog':
        out, _ = fog(img, depth, rng)
    elif condition == 'night':
        luma = img @ _LUMA
        bright = (luma > max(np.quantile(luma, 0.995), 0.8)).astype(np.float32)
        out = night(img, depth, rng, img * bright[..., None] * 2.0)
    elif condition == 'rain':
        out = rain(img, depth, rng)
    elif condition == 'snow':
        out = snow(img, depth, rng)
    else:
        out = img
    return to_uint8(out)

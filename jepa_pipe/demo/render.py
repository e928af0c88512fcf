"""Rendering moving shapes with numpy.

A clip's class is its *motion* (direction, rotation sense, speed). Colour, shape, size,
start position and background are drawn at random and carry no label information, so no
single frame tells the class and a model that learned nothing scores at chance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Motion = Literal["left", "right", "up", "down", "clockwise", "counterclockwise"]
Speed = Literal["slow", "fast"]
MOTIONS: tuple[Motion, ...] = ("left", "right", "up", "down", "clockwise", "counterclockwise")
SPEEDS: tuple[Speed, ...] = ("slow", "fast")
KINDS = ("circle", "square", "triangle")
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 220),
    "yellow": (230, 200, 40),
    "purple": (150, 60, 190),
}


@dataclass
class Shape:
    kind: str
    color: str
    radius: float
    x: np.ndarray  # [T] centre x (pixels)
    y: np.ndarray  # [T] centre y
    angle: np.ndarray  # [T] radians
    visible: np.ndarray  # [T] bool


def random_look(rng: np.random.Generator, h: int) -> tuple[str, str, float]:
    kind = KINDS[rng.integers(len(KINDS))]
    color = list(COLORS)[rng.integers(len(COLORS))]
    return kind, color, float(rng.uniform(0.10, 0.14) * h)


def moving_shape(
    rng: np.random.Generator,
    motion: Motion,
    speed: Speed,
    n: int,
    h: int,
    w: int,
    start: int = 0,
    length: int | None = None,
) -> Shape:
    """A shape that is still until ``start``, performs ``motion`` for ``length`` frames, then
    rests at its end pose."""
    length = n - start if length is None else length
    kind, color, r = random_look(rng, h)
    t = np.clip(np.arange(n) - start, 0, length - 1).astype(np.float64)
    frac = 0.75 if speed == "fast" else 0.35  # fraction of the free span travelled
    angle0 = rng.uniform(0, 2 * math.pi)
    x0, y0 = rng.uniform(r, w - r), rng.uniform(r, h - r)
    x, y, angle = np.full(n, x0), np.full(n, y0), np.full(n, angle0)
    if motion in ("left", "right", "up", "down"):
        span = (w if motion in ("left", "right") else h) - 2 * r
        travel = frac * span
        pos0 = rng.uniform(r, r + span - travel)  # start so the whole path stays in frame
        step = travel / max(length - 1, 1)
        if motion == "right":
            x = pos0 + step * t
        elif motion == "left":
            x = (w - pos0) - step * t
        elif motion == "down":
            y = pos0 + step * t
        else:
            y = (h - pos0) - step * t
    else:
        turns = 1.25 if speed == "fast" else 0.5
        sign = 1.0 if motion == "clockwise" else -1.0  # image y points down: +angle is clockwise
        angle = angle0 + sign * 2 * math.pi * turns * t / max(length - 1, 1)
        x0, y0 = rng.uniform(1.5 * r, w - 1.5 * r), rng.uniform(1.5 * r, h - 1.5 * r)
        x, y = np.full(n, x0), np.full(n, y0)
    return Shape(kind, color, r, x, y, angle, np.ones(n, bool))


def still_shape(rng: np.random.Generator, n: int, h: int, w: int) -> Shape:
    kind, color, r = random_look(rng, h)
    return Shape(
        kind,
        color,
        r,
        np.full(n, rng.uniform(r, w - r)),
        np.full(n, rng.uniform(r, h - r)),
        np.full(n, rng.uniform(0, 2 * math.pi)),
        np.ones(n, bool),
    )


def _mask(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    if kind == "circle":
        return u * u + v * v <= r * r
    if kind == "square":
        return (np.abs(u) <= 0.85 * r) & (np.abs(v) <= 0.85 * r)
    # triangle with apex at v = -r and base at v = r/2
    return (v <= 0.5 * r) & (np.abs(u) * math.sqrt(3) <= v + r)


def render(shapes: list[Shape], n: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Frames [T, H, W, 3] uint8. Each shape carries a dark dot off its centre, so that
    rotation is visible on circles too."""
    c0, c1 = rng.integers(30, 120, size=3), rng.integers(120, 220, size=3)
    ramp = np.linspace(0.0, 1.0, w)[None, :, None]
    background = (c0 + (c1 - c0) * ramp).repeat(h, axis=0)  # [H, W, 3]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = background.copy()
        for s in shapes:
            if not s.visible[i]:
                continue
            ca, sa = math.cos(s.angle[i]), math.sin(s.angle[i])
            dx, dy = xx - s.x[i], yy - s.y[i]
            u, v = dx * ca + dy * sa, -dx * sa + dy * ca
            img[_mask(s.kind, u, v, s.radius)] = COLORS[s.color]
            dot = (u - 0.5 * s.radius) ** 2 + v**2 <= (0.22 * s.radius) ** 2
            img[dot] = (15, 15, 15)
        frames[i] = img.astype(np.uint8)
    return frames


# Captions depend on motion and speed only: appearance is a nuisance variable.
_VERBS: dict[str, tuple[str, ...]] = {
    "left": ("moves to the left", "slides left", "travels from right to left", "drifts leftward"),
    "right": (
        "moves to the right",
        "slides right",
        "travels from left to right",
        "drifts rightward",
    ),
    "up": ("moves up", "rises", "travels upward", "slides toward the top"),
    "down": ("moves down", "sinks", "travels downward", "slides toward the bottom"),
    "clockwise": ("spins clockwise", "rotates clockwise", "turns clockwise"),
    "counterclockwise": (
        "spins counterclockwise",
        "rotates anticlockwise",
        "turns counterclockwise",
    ),
}
_ADVERBS: dict[str, tuple[str, ...]] = {
    "slow": ("slowly", "gently", "at a slow pace"),
    "fast": ("quickly", "rapidly", "at high speed"),
}
_SUBJECTS = ("a shape", "an object", "something", "a small figure", "a colored shape")


def caption(rng: np.random.Generator, motion: Motion, speed: Speed) -> str:
    def pick(xs):
        return xs[rng.integers(len(xs))]

    return f"{pick(_SUBJECTS)} {pick(_VERBS[motion])} {pick(_ADVERBS[speed])}"


def captions(rng: np.random.Generator, motion: Motion, speed: Speed, k: int) -> list[str]:
    """k distinct paraphrases where possible."""
    out: list[str] = []
    for _ in range(8 * k):
        c = caption(rng, motion, speed)
        if c not in out:
            out.append(c)
        if len(out) == k:
            break
    return out

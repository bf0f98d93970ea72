"""Meshes and textured objects for the GL renderers, all generated in code (deterministic from a seed).

Meshes are triangle soups (no index buffer) in metres with per-vertex normals and texture coordinates; texture
coordinates (u, v) in [0, 1] address the texture image with v growing downwards (row 0 is v = 0). A compound object
packs the textures of its parts into one atlas, one tile per part, so every surface point of an object shows a
texture spot of its own (no repeated tiles that would make true matches ambiguous).

Objects (see ``OBJECT_NAMES``): ``drill`` is weakly textured (near-uniform colours, like the drill of papers/000),
``hulk`` is strongly textured (like its hulk figure); ``box``, ``can``, ``sphere`` and ``torus`` sit in between or
above, and ``occluder`` is the tall board that passes in front of the target for occlusion tests. Their textures
(and the backgrounds) come from ``textures``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from dense_descriptors_ros.synthetic.textures import (
    blocks_texture,
    noise_texture,
    photo_crop,
    stripes_texture,
    uniform_texture,
)

TILE_PX = 256
_TILE_MARGIN = 2.0 / TILE_PX  # keeps mipmapped samples of one tile from bleeding into the next


@dataclass
class Mesh:
    """A triangle soup: ``positions`` (N, 3) metres, ``normals`` (N, 3) unit, ``uvs`` (N, 2); N is a multiple of 3."""

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray

    def __post_init__(self) -> None:
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float32).reshape(-1, 3)
        self.normals = np.ascontiguousarray(self.normals, dtype=np.float32).reshape(-1, 3)
        self.uvs = np.ascontiguousarray(self.uvs, dtype=np.float32).reshape(-1, 2)
        if len(self.positions) % 3 or not len(self.positions) == len(self.normals) == len(self.uvs):
            raise ValueError(
                f"a mesh needs 3k vertices with one normal and uv each, got {len(self.positions)} positions, "
                f"{len(self.normals)} normals, {len(self.uvs)} uvs"
            )

    def transformed(self, transform: np.ndarray) -> Mesh:
        """The mesh moved by a 4x4 rigid transform."""
        R, t = transform[:3, :3], transform[:3, 3]
        return Mesh(self.positions @ R.T + t, self.normals @ R.T, self.uvs)

    @property
    def radius(self) -> float:
        """Largest distance of a vertex from the origin (the object frame's centre)."""
        return float(np.linalg.norm(self.positions, axis=1).max())


@dataclass
class ObjectModel:
    """A renderable object: mesh, texture atlas (uint8 RGB), how textured it is, and how shiny."""

    name: str
    mesh: Mesh
    texture: np.ndarray
    texture_strength: str  # "weak", "medium" or "strong"
    specular: float = 0.15


# ---------------------------------------------------------------------------------------------------------------
# Parametric primitives


def parametric_mesh(
    surface: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]], nu: int, nv: int
) -> Mesh:
    """Triangulate ``surface(s, t) -> (positions, normals, uvs)`` over an (nu x nv) grid of s, t in [0, 1]."""
    s, t = np.meshgrid(np.linspace(0.0, 1.0, nu + 1), np.linspace(0.0, 1.0, nv + 1), indexing="ij")
    pos, nrm, uv = surface(s, t)
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    i, j = i.ravel(), j.ravel()
    # Two triangles per grid cell: (i,j) (i+1,j) (i+1,j+1) and (i,j) (i+1,j+1) (i,j+1).
    ci = np.stack([i, i + 1, i + 1, i, i + 1, i], axis=1).ravel()
    cj = np.stack([j, j, j + 1, j, j + 1, j + 1], axis=1).ravel()
    return Mesh(pos[ci, cj], nrm[ci, cj], uv[ci, cj])


def triangle_mesh(vertices: np.ndarray, faces: np.ndarray) -> Mesh:
    """An indexed triangle mesh (vertices (N, 3) metres, faces (F, 3)) as a flat-shaded triangle soup, uv 0."""
    corners = np.asarray(vertices, np.float64)[np.asarray(faces)]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    return Mesh(corners.reshape(-1, 3), np.repeat(normals, 3, axis=0), np.zeros((corners.size // 3, 2)))


def quad_mesh(corner: np.ndarray, edge_u: np.ndarray, edge_v: np.ndarray) -> Mesh:
    """A flat parallelogram ``corner + s*edge_u + t*edge_v`` with uv = (s, t) and normal edge_u x edge_v."""
    corner, edge_u, edge_v = (np.asarray(a, np.float64) for a in (corner, edge_u, edge_v))
    normal = np.cross(edge_u, edge_v)
    normal /= np.linalg.norm(normal)

    def surface(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = corner + s[..., None] * edge_u + t[..., None] * edge_v
        return pos, np.broadcast_to(normal, pos.shape), np.stack([s, t], -1)

    return parametric_mesh(surface, 1, 1)


def box_faces(size: tuple[float, float, float]) -> list[Mesh]:
    """The six outward-facing faces of an axis-aligned box centred at the origin (one mesh per face)."""
    hx, hy, hz = (0.5 * v for v in size)
    x, y, z = np.array([2 * hx, 0, 0]), np.array([0, 2 * hy, 0]), np.array([0, 0, 2 * hz])
    return [
        quad_mesh([-hx, -hy, hz], x, y),  # +z
        quad_mesh([hx, -hy, -hz], -x, y),  # -z
        quad_mesh([hx, -hy, hz], -z, y),  # +x
        quad_mesh([-hx, -hy, -hz], z, y),  # -x
        quad_mesh([-hx, hy, hz], x, -z),  # +y
        quad_mesh([-hx, -hy, -hz], x, z),  # -y
    ]


def cylinder_side(radius: float, length: float, segments: int = 48) -> Mesh:
    """Side of a cylinder along z, centred at the origin; u goes around, v along the axis."""

    def surface(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = 2 * math.pi * s
        nrm = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], -1)
        pos = nrm * radius + np.stack([0 * a, 0 * a, (t - 0.5) * length], -1)
        return pos, nrm, np.stack([s, t], -1)

    return parametric_mesh(surface, segments, 1)


def disk(radius: float, z: float, facing: float, segments: int = 48) -> Mesh:
    """A disk in the plane z, normal ``facing`` (+1 or -1) along z, planar texture mapping."""

    def surface(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = 2 * math.pi * s * facing
        x, y = t * radius * np.cos(a), t * radius * np.sin(a)
        pos = np.stack([x, y, np.full_like(x, z)], -1)
        nrm = np.broadcast_to(np.array([0.0, 0.0, facing]), pos.shape)
        return pos, nrm, np.stack([0.5 + 0.5 * x / radius, 0.5 + 0.5 * y / radius], -1)

    return parametric_mesh(surface, segments, 1)


def cylinder_parts(radius: float, length: float, segments: int = 48) -> list[Mesh]:
    """Closed cylinder along z: side, +z cap, -z cap."""
    return [
        cylinder_side(radius, length, segments),
        disk(radius, 0.5 * length, 1.0, segments),
        disk(radius, -0.5 * length, -1.0, segments),
    ]


def sphere(radius: float, segments: int = 48) -> Mesh:
    """A UV sphere (latitude-longitude texture mapping)."""

    def surface(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = 2 * math.pi * s, math.pi * t
        nrm = np.stack([np.sin(b) * np.cos(a), np.sin(b) * np.sin(a), np.cos(b)], -1)
        return nrm * radius, nrm, np.stack([s, t], -1)

    return parametric_mesh(surface, segments, segments // 2)


def torus(major: float, minor: float, segments: int = 64) -> Mesh:
    """A torus around z: ring radius ``major``, tube radius ``minor``."""

    def surface(s: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, b = 2 * math.pi * s, 2 * math.pi * t
        ring = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], -1)
        nrm = ring * np.cos(b)[..., None] + np.stack([0 * a, 0 * a, np.sin(b)], -1)
        return ring * major + nrm * minor, nrm, np.stack([s, t], -1)

    return parametric_mesh(surface, segments, segments // 2)


def pose_matrix(rotation_xyz_deg: tuple[float, float, float] = (0, 0, 0), translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """4x4 transform from extrinsic x-y-z Euler angles (degrees) and a translation."""
    rx, ry, rz = (math.radians(a) for a in rotation_xyz_deg)
    Rx = np.array([[1, 0, 0], [0, math.cos(rx), -math.sin(rx)], [0, math.sin(rx), math.cos(rx)]])
    Ry = np.array([[math.cos(ry), 0, math.sin(ry)], [0, 1, 0], [-math.sin(ry), 0, math.cos(ry)]])
    Rz = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0], [0, 0, 1]])
    T = np.eye(4)
    T[:3, :3] = Rz @ Ry @ Rx
    T[:3, 3] = translation
    return T


# ---------------------------------------------------------------------------------------------------------------
# Texture atlases and objects


def pack_atlas(parts: list[tuple[Mesh, np.ndarray]]) -> tuple[Mesh, np.ndarray]:
    """Merge parts (mesh with uv in [0, 1], its own TILE_PX-square texture) into one mesh and one texture atlas."""
    n = max(1, math.ceil(math.sqrt(len(parts))))
    atlas = np.zeros((n * TILE_PX, n * TILE_PX, 3), np.uint8)
    positions, normals, uvs = [], [], []
    for k, (mesh, tile) in enumerate(parts):
        row, col = divmod(k, n)
        if tile.shape != (TILE_PX, TILE_PX, 3):
            tile = cv2.resize(tile, (TILE_PX, TILE_PX), interpolation=cv2.INTER_AREA)
        atlas[row * TILE_PX : (row + 1) * TILE_PX, col * TILE_PX : (col + 1) * TILE_PX] = tile
        inner = mesh.uvs * (1 - 2 * _TILE_MARGIN) + _TILE_MARGIN
        uvs.append((inner + np.array([col, row], np.float32)) / n)
        positions.append(mesh.positions)
        normals.append(mesh.normals)
    return Mesh(np.concatenate(positions), np.concatenate(normals), np.concatenate(uvs)), atlas


def _placed(meshes: list[Mesh], transform: np.ndarray) -> list[Mesh]:
    return [m.transformed(transform) for m in meshes]


def _drill(rng: np.random.Generator) -> ObjectModel:
    """Weakly textured power drill: yellow body and chuck, dark handle and battery, near-uniform colours."""
    yellow, dark, grey = (214, 170, 38), (46, 46, 50), (120, 120, 125)
    body = _placed(cylinder_parts(0.034, 0.15), pose_matrix((0, 90, 0), (0.0, -0.03, 0.0)))
    chuck = _placed(cylinder_parts(0.016, 0.05), pose_matrix((0, 90, 0), (0.1, -0.03, 0.0)))
    handle = _placed(box_faces((0.04, 0.10, 0.04)), pose_matrix((0, 0, -12), (-0.03, 0.05, 0.0)))
    battery = _placed(box_faces((0.09, 0.035, 0.07)), pose_matrix((0, 0, 0), (-0.015, 0.115, 0.0)))
    parts = [(m, uniform_texture(TILE_PX, TILE_PX, yellow, rng)) for m in body]
    parts += [(m, uniform_texture(TILE_PX, TILE_PX, grey, rng)) for m in chuck]
    parts += [(m, uniform_texture(TILE_PX, TILE_PX, dark, rng)) for m in handle + battery]
    mesh, atlas = pack_atlas(parts)
    return ObjectModel("drill", mesh, atlas, "weak", specular=0.35)


def _hulk(rng: np.random.Generator) -> ObjectModel:
    """Strongly textured figure: box torso, sphere head, cylinder arms and legs, green multi-scale texture."""
    green, purple = (0.55, 1.05, 0.45), (0.8, 0.5, 1.0)
    meshes = _placed(box_faces((0.11, 0.10, 0.06)), pose_matrix(translation=(0, -0.01, 0)))
    meshes += [sphere(0.035).transformed(pose_matrix(translation=(0, -0.095, 0)))]
    for side in (-1, 1):
        meshes += _placed(cylinder_parts(0.018, 0.11), pose_matrix((90, 0, side * 20), (side * 0.075, 0.0, 0.0)))
    leg_meshes = []
    for side in (-1, 1):
        leg_meshes += _placed(cylinder_parts(0.022, 0.09), pose_matrix((90, 0, 0), (side * 0.03, 0.085, 0.0)))
    parts = [(m, noise_texture(TILE_PX, TILE_PX, rng, green)) for m in meshes]
    parts += [(m, noise_texture(TILE_PX, TILE_PX, rng, purple)) for m in leg_meshes]
    mesh, atlas = pack_atlas(parts)
    return ObjectModel("hulk", mesh, atlas, "strong", specular=0.1)


def _box(rng: np.random.Generator) -> ObjectModel:
    """Cereal-box-like cuboid with a photograph and printed patterns on its faces."""
    faces = box_faces((0.16, 0.11, 0.06))
    tiles = [
        photo_crop(TILE_PX, TILE_PX, rng) if k % 2 == 0 else blocks_texture(TILE_PX, TILE_PX, rng)
        for k in range(len(faces))
    ]
    mesh, atlas = pack_atlas(list(zip(faces, tiles, strict=True)))
    return ObjectModel("box", mesh, atlas, "strong", specular=0.2)


def _can(rng: np.random.Generator) -> ObjectModel:
    """A can: striped label on the side, plain lids (medium texture)."""
    side, top, bottom = cylinder_parts(0.04, 0.12)
    lid = (175, 175, 180)
    parts = [
        (side, stripes_texture(TILE_PX, TILE_PX, rng)),
        (top, uniform_texture(TILE_PX, TILE_PX, lid, rng)),
        (bottom, uniform_texture(TILE_PX, TILE_PX, lid, rng)),
    ]
    mesh, atlas = pack_atlas(parts)
    return ObjectModel("can", mesh, atlas, "medium", specular=0.5)


def _sphere(rng: np.random.Generator) -> ObjectModel:
    mesh, atlas = pack_atlas([(sphere(0.07), noise_texture(TILE_PX, TILE_PX, rng))])
    return ObjectModel("sphere", mesh, atlas, "strong", specular=0.3)


def _torus(rng: np.random.Generator) -> ObjectModel:
    mesh, atlas = pack_atlas([(torus(0.06, 0.025), blocks_texture(TILE_PX, TILE_PX, rng))])
    return ObjectModel("torus", mesh, atlas, "strong", specular=0.2)


def _occluder(rng: np.random.Generator) -> ObjectModel:
    """A tall thin board (0.1 x 0.8 x 0.01 m) with a bold pattern, passed in front of the target."""
    faces = box_faces((0.1, 0.8, 0.01))
    mesh, atlas = pack_atlas([(f, blocks_texture(TILE_PX, TILE_PX, rng)) for f in faces])
    return ObjectModel("occluder", mesh, atlas, "strong", specular=0.1)


OBJECT_BUILDERS: dict[str, Callable[[np.random.Generator], ObjectModel]] = {
    "drill": _drill,
    "hulk": _hulk,
    "box": _box,
    "can": _can,
    "sphere": _sphere,
    "torus": _torus,
    "occluder": _occluder,
}
OBJECT_NAMES = tuple(OBJECT_BUILDERS)


def make_object(name: str, seed: int = 0) -> ObjectModel:
    """Build object ``name`` (one of OBJECT_NAMES); its textures are deterministic from ``seed``."""
    if name not in OBJECT_BUILDERS:
        raise ValueError(f"unknown object {name!r}; expected one of {list(OBJECT_NAMES)}")
    return OBJECT_BUILDERS[name](np.random.default_rng([seed, OBJECT_NAMES.index(name)]))

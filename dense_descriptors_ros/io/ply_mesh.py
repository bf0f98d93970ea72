"""Triangle meshes from PLY files (ASCII or binary), as BOP ships its object models: vertex x, y, z (other vertex
properties are read past) and faces as a list of vertex indices. Only triangles; anything else is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_SCALARS = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2", "ushort": "u2",
    "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "double": "f8", "float64": "f8",
}  # fmt: skip
_ENDIAN = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "<"}


class PlyError(ValueError):
    """A PLY file this reader cannot use; the message names the file and what is wrong."""


def _header(path: Path, data: bytes) -> tuple[str, list[tuple[str, int, list[list[str]]]], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise PlyError(f"{path}: not a PLY file (no 'ply' magic or no end_header)")
    body = data.index(b"\n", end) + 1
    fmt, elements = "", []
    for line in data[:end].decode("ascii", "replace").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            elements[-1][2].append(words[1:])
    if fmt not in _ENDIAN:
        raise PlyError(f"{path}: unknown PLY format {fmt!r}")
    return fmt, elements, body


def _scalar(path: Path, name: str, endian: str) -> np.dtype:
    if name not in _SCALARS:
        raise PlyError(f"{path}: unknown PLY property type {name!r}")
    return np.dtype(endian + _SCALARS[name])


def read_ply_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) float64 (in the file's units) and triangles (F, 3) int64 of a PLY mesh."""
    path = Path(path)
    data = path.read_bytes()
    fmt, elements, offset = _header(path, data)
    endian = _ENDIAN[fmt]
    vertices = faces = None
    lines = data[offset:].decode("ascii", "replace").splitlines() if fmt == "ascii" else []
    for name, count, properties in elements:
        if name == "vertex":
            if any(p[0] == "list" for p in properties):
                raise PlyError(f"{path}: list properties on vertices are not supported")
            dtype = np.dtype([(p[1], _scalar(path, p[0], endian)) for p in properties])
            if not {"x", "y", "z"} <= set(dtype.names or ()):
                raise PlyError(f"{path}: vertices need x, y and z properties, got {dtype.names}")
            if fmt == "ascii":
                table = np.array([line.split()[: len(properties)] for line in lines[:count]], dtype=np.float64)
                lines = lines[count:]
                vertices = table.reshape(count, len(properties))[:, [dtype.names.index(axis) for axis in "xyz"]]
            else:
                table = np.frombuffer(data, dtype, count, offset)
                offset += count * dtype.itemsize
                vertices = np.column_stack([table[axis] for axis in "xyz"]).astype(np.float64)
        elif name == "face":
            if len(properties) != 1 or properties[0][0] != "list":
                raise PlyError(f"{path}: faces must be one list of vertex indices, got {properties}")
            _, count_type, index_type, _ = properties[0]
            if fmt == "ascii":
                rows = [line.split() for line in lines[:count]]
                lines = lines[count:]
                sizes = np.array([int(row[0]) for row in rows], dtype=np.int64)
                faces = np.array([row[1:4] for row in rows if len(row) == 4], dtype=np.int64).reshape(-1, 3)
            else:
                dtype = np.dtype(
                    [("n", _scalar(path, count_type, endian)), ("i", _scalar(path, index_type, endian), 3)]
                )
                table = np.frombuffer(data, dtype, count, offset)
                offset += count * dtype.itemsize
                sizes, faces = table["n"], table["i"].astype(np.int64)
            if count and not (sizes == 3).all():
                raise PlyError(f"{path}: only triangle meshes are supported (face sizes {sorted(set(sizes.tolist()))})")
        elif fmt != "ascii":
            raise PlyError(f"{path}: element {name!r} before the mesh is not supported")
    if vertices is None or faces is None:
        raise PlyError(f"{path}: needs vertex and face elements")
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise PlyError(f"{path}: face indices outside the {len(vertices)} vertices")
    return vertices, faces

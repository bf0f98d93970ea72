"""PLY meshes: binary and ASCII files give the same triangles; files this reader cannot use say why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dense_descriptors_ros.io.ply_mesh import PlyError, read_ply_mesh

VERTICES = np.array([[0, 0, 0], [10, 0, 0], [0, 20, 0], [0, 0, 30]], np.float64)
FACES = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])


def write_binary_ply(path: Path, vertices: np.ndarray, faces: np.ndarray, extra_vertex_property: bool = True) -> Path:
    """A little-endian PLY as BOP writes it (float x, y, z, here with a normal component after them)."""
    header = ["ply", "format binary_little_endian 1.0", "comment made by a test", f"element vertex {len(vertices)}"]
    header += [f"property float {axis}" for axis in "xyz"]
    vertex_fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if extra_vertex_property:
        header.append("property float nx")
        vertex_fields.append(("nx", "<f4"))
    header += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    table = np.zeros(len(vertices), vertex_fields)
    for n, axis in enumerate("xyz"):
        table[axis] = vertices[:, n]
    face_table = np.zeros(len(faces), [("n", "u1"), ("i", "<i4", 3)])
    face_table["n"], face_table["i"] = 3, faces
    path.write_bytes(("\n".join(header) + "\n").encode() + table.tobytes() + face_table.tobytes())
    return path


def test_binary_and_ascii_files_give_the_same_mesh(tmp_path: Path) -> None:
    vertices, faces = read_ply_mesh(write_binary_ply(tmp_path / "binary.ply", VERTICES, FACES))
    np.testing.assert_array_equal(vertices, VERTICES)
    np.testing.assert_array_equal(faces, FACES)
    lines = ["ply", "format ascii 1.0", "element vertex 4", "property double x", "property double y"]
    lines += ["property double z", "property uchar red", "element face 4", "property list uchar int vertex_indices"]
    lines += ["end_header", *(" ".join(f"{v:g}" for v in row) + " 255" for row in VERTICES)]
    lines += ["3 " + " ".join(str(i) for i in face) for face in FACES]
    (tmp_path / "ascii.ply").write_text("\n".join(lines) + "\n")
    ascii_vertices, ascii_faces = read_ply_mesh(tmp_path / "ascii.ply")
    np.testing.assert_array_equal(ascii_vertices, VERTICES)
    np.testing.assert_array_equal(ascii_faces, FACES)


def test_files_it_cannot_use_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "text.ply").write_text("hello")
    with pytest.raises(PlyError, match="not a PLY file"):
        read_ply_mesh(tmp_path / "text.ply")
    bad_index = write_binary_ply(tmp_path / "bad_index.ply", VERTICES, np.array([[0, 1, 9]]))
    with pytest.raises(PlyError, match="outside the 4 vertices"):
        read_ply_mesh(bad_index)
    quads = "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
    quads += "element face 1\nproperty list uchar int vertex_indices\nend_header\n" + "0 0 0\n" * 4 + "4 0 1 2 3\n"
    (tmp_path / "quads.ply").write_text(quads)
    with pytest.raises(PlyError, match="only triangle meshes"):
        read_ply_mesh(tmp_path / "quads.ply")
    (tmp_path / "points.ply").write_text(quads.split("element face")[0] + "end_header\n" + "0 0 0\n" * 4)
    with pytest.raises(PlyError, match="needs vertex and face elements"):
        read_ply_mesh(tmp_path / "points.ply")

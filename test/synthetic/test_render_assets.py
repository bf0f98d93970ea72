"""Render assets and textures (no OpenGL needed): objects differ in texture strength, atlases keep parts apart,
backgrounds are deterministic from their seed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dense_descriptors_ros.synthetic.render_assets import box_faces, make_object, pack_atlas
from dense_descriptors_ros.synthetic.textures import BACKGROUND_NAMES, checker_texture, make_background


def test_weak_and_strong_textures_differ():
    def gradient_energy(name: str) -> float:
        texture = cv2.cvtColor(make_object(name, 0).texture, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(np.abs(cv2.Laplacian(texture, cv2.CV_32F)).mean())

    assert gradient_energy("drill") * 5 < gradient_energy("hulk")


def test_assets_pack_parts_into_distinct_tiles():
    faces = box_faces((0.1, 0.1, 0.1))
    mesh, atlas = pack_atlas([(face, checker_texture(2, 128)) for face in faces])
    assert atlas.shape == (768, 768, 3)
    tiles = {tuple(np.floor(mesh.uvs[k * 6 : (k + 1) * 6] * 3).astype(int).min(0)) for k in range(6)}
    assert len(tiles) == 6


def test_backgrounds_are_deterministic_from_the_seed():
    for name in BACKGROUND_NAMES:
        image = make_background(name, 48, 64, seed=1)
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, make_background(name, 48, 64, seed=1))
        assert not np.array_equal(image, make_background(name, 48, 64, seed=2)), name
    with pytest.raises(ValueError, match="unknown background"):
        make_background("marble", 48, 64)

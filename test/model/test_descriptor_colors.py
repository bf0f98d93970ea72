"""DescriptorColorizer: the PCA colouring is fixed after the first frame."""

import numpy as np
import pytest

from dense_descriptors_ros.model.descriptor_colors import DescriptorColorizer


def test_colorizer_is_fixed_after_first_frame():
    rng = np.random.default_rng(0)
    first = rng.normal(size=(20, 30, 8)).astype(np.float32)
    colorizer = DescriptorColorizer()
    a = colorizer(first)
    assert a.shape == (20, 30, 3) and a.dtype == np.uint8
    # A very different second frame must not change the mapping of the first frame's descriptors.
    colorizer(first * 10 + 3)
    np.testing.assert_array_equal(colorizer(first), a)
    with_nan = first.copy()
    with_nan[0, 0, 0] = np.nan
    assert (colorizer(with_nan)[0, 0] == 0).all()
    with pytest.raises(ValueError, match="D=8"):
        colorizer(first[..., :4])

"""The resize to the letterbox content: antialiased at every ratio, faithful to area averaging."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from preprocessing.decode import _resample

# source sides for a 512 target: one final step under 1.5x, one over 1.5x, exactly 2x, and
# halvings followed by each kind of final step
SIDES = [563, 742, 870, 1009, 1024, 1690, 2030, 2254, 3390]


def checkerboard(side: int) -> np.ndarray:
    """The finest detail an image can hold (period 2 px): after a shrink any of it left is aliasing."""
    y, x = np.mgrid[:side, :side]
    return (((x + y) % 2) * 1000 + 500).astype(np.uint16)


@pytest.mark.parametrize(
    ("side", "target"), [(s, (512, 512)) for s in SIDES] + [(1009, (512, 400)), (2030, (300, 512))]
)
def test_the_finest_detail_is_averaged_away_as_area_averaging_does(side, target):
    """Also for targets of another aspect, where the axes need different numbers of halvings."""
    src = checkerboard(side)
    ours = _resample(src, target).astype(np.float64)
    area = cv2.resize(src.astype(np.float32), target, interpolation=cv2.INTER_AREA)
    assert ours.shape == target[::-1]
    # plain bilinear leaves std 125-167 of the input's 500 here; area averaging 0-134
    assert ours.std() <= 1.1 * area.std() + 3, (ours.std(), area.std())
    assert abs(ours.mean() - src.mean()) < 2


@pytest.mark.parametrize("side", SIDES)
def test_smooth_content_matches_area_averaging(side):
    y, x = np.mgrid[:side, :side] / side
    src = 2000 + 1500 * np.sin(2 * np.pi * 7 * x) * np.cos(2 * np.pi * 5 * y) + 800 * x
    src = src.astype(np.float32)
    ours = _resample(src, (512, 400))
    area = cv2.resize(src, (512, 400), interpolation=cv2.INTER_AREA)
    assert ours.dtype == np.float32 and ours.shape == (400, 512)
    # a halving of an odd side drops its last source row or column, which moves the far edge by
    # under half an output pixel: allowed for, as the local slope times half a pixel
    slope = max(np.abs(np.diff(area, axis=0)).max(), np.abs(np.diff(area, axis=1)).max())
    assert np.abs(ours - area).max() < 0.01 * (src.max() - src.min()) + 0.5 * slope


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_types_are_kept_and_small_images_are_enlarged(dtype):
    small = (np.arange(300 * 200) % 251).astype(dtype).reshape(200, 300)
    out = _resample(small, (512, 341))
    assert out.dtype == dtype and out.shape == (341, 512)
    big = np.full((1500, 1100), 77, dtype)
    out = _resample(big, (512, 375))
    assert out.dtype == dtype and out.shape == (375, 512) and np.all(out == 77)

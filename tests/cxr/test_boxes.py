"""Box mapping between model-input pixels and original-image pixels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cxr.format import ResizeRecord, letterbox_record, smart_resize_record


def test_smart_resize_record_matches_the_processor(tiny_model):
    import numpy as np
    from PIL import Image

    from cxr.model import load_processor

    proc = load_processor(tiny_model, min_pixels=56 * 56, max_pixels=224 * 224)
    img = Image.fromarray(np.zeros((301, 517, 3), np.uint8))
    rec = smart_resize_record(517, 301, min_pixels=56 * 56, max_pixels=224 * 224)
    t, h, w = proc.image_processor(images=[img], return_tensors="pt")["image_grid_thw"][0].tolist()
    assert (rec.input_w, rec.input_h) == (w * 14, h * 14)
    assert rec.input_w % 28 == 0 and rec.input_h % 28 == 0


def test_known_mapping():
    rec = ResizeRecord(orig_w=1000, orig_h=500, content_w=500, content_h=250)
    assert rec.to_original([10, 20, 30, 40]) == [20, 40, 60, 80]
    assert rec.to_input([20, 40, 60, 80]) == [10, 20, 30, 40]
    lb = letterbox_record(1000, 500, 512)
    assert (lb.input_w, lb.input_h, lb.pad_left, lb.pad_top) == (512, 512, 0, 128)
    assert lb.to_original([0, 128, 512, 384]) == [0, 0, 1000, 500]
    assert lb.to_original([0, 0, 512, 512]) == [0, 0, 1000, 500]  # padding clips away


def test_bad_record_is_rejected():
    with pytest.raises(ValueError, match="orig_w"):
        ResizeRecord(0, 10, 10, 10)


sizes = st.integers(min_value=32, max_value=4000)


@given(sizes, sizes, st.data())
def test_round_trip_contains_the_original_box(w, h, data):
    rec = (
        letterbox_record(w, h, 512)
        if data.draw(st.booleans())
        else smart_resize_record(w, h, min_pixels=56 * 56, max_pixels=512 * 512)
    )
    x1 = data.draw(st.integers(0, w - 1))
    y1 = data.draw(st.integers(0, h - 1))
    box = [x1, y1, data.draw(st.integers(x1 + 1, w)), data.draw(st.integers(y1 + 1, h))]
    inp = rec.to_input(box)
    assert 0 <= inp[0] <= inp[2] <= rec.input_w and 0 <= inp[1] <= inp[3] <= rec.input_h
    back = rec.to_original(inp)
    # outward rounding both ways: the mapped-back box contains the original, within a pixel of scale
    assert back[0] <= box[0] and back[1] <= box[1] and back[2] >= box[2] and back[3] >= box[3]
    tol_x, tol_y = 1 / rec.scale_x + 1, 1 / rec.scale_y + 1
    assert box[0] - back[0] <= tol_x and back[2] - box[2] <= tol_x
    assert box[1] - back[1] <= tol_y and back[3] - box[3] <= tol_y

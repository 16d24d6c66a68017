"""`sfumato expand --aspect W:H`: the per-side amounts that reach the ratio."""

from __future__ import annotations

import pytest
from sfumato.bridge.errors import SfumatoError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("size", "aspect", "sides"), [
    ((100, 100), "16:9", (39, 0, 39, 0)),  # 178 x 100
    ((160, 90), "1:1", (0, 35, 0, 35)),
    ((101, 100), "2:1", (49, 0, 50, 0)),  # the odd pixel on the right
    ((160, 90), "16:9", (0, 0, 0, 0)),
])
def test_expand_to_an_aspect_ratio_works_out_the_sides(size: tuple[int, int], aspect: str,
                                                       sides: tuple[int, ...]) -> None:
    from sfumato.core.cli.expand_cmd import sides_for_aspect

    left, top, right, bottom = sides_for_aspect(*size, aspect)
    assert (left, top, right, bottom) == sides
    width, height = size[0] + left + right, size[1] + top + bottom
    wide, high = (int(v) for v in aspect.split(":"))
    assert abs(width / height - wide / high) < 1 / min(width, height)
    with pytest.raises(SfumatoError):
        sides_for_aspect(*size, "wide")

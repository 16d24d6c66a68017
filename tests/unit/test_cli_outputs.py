"""Where `sfumato upscale` writes, decided before any work: pure path rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfumato.core.cli.output_paths import Source, check_output, expand, target
from sfumato.core.errors import SfumatoError

pytestmark = pytest.mark.unit


def test_a_folder_run_skips_what_an_earlier_run_wrote_beside_its_source(tmp_path: Path) -> None:
    for name in ("a.jpg", "a-x4.png", "b-x2.png", "c.png", "c-x2.5.png", "notes.txt"):
        (tmp_path / name).touch()
    found = [s.path.name for s in expand([tmp_path])]
    # b-x2.png has no source beside it: it is somebody's picture, not our result
    assert found == ["a.jpg", "b-x2.png", "c.png"]


def test_results_of_a_folder_go_to_a_sibling_folder(tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    source = Source(scans / "a.png", scans)
    assert target(source, None, 3, 4.0) == tmp_path / "scans-upscaled" / "a-x4.png"
    assert target(Source(scans / "a.png"), None, 1, 2.5) == scans / "a-x2.5.png"
    assert target(source, tmp_path / "big", 3, 4.0) == tmp_path / "big" / "a-x4.png"
    assert target(Source(scans / "a.png"), tmp_path / "one.png", 1, 4.0) == tmp_path / "one.png"


def test_one_output_file_is_refused_for_several_inputs(tmp_path: Path) -> None:
    check_output(tmp_path / "one.png", 1)
    check_output(tmp_path / "folder", 2)
    with pytest.raises(SfumatoError, match="names one file, but there are 2 input images"):
        check_output(tmp_path / "one.png", 2)

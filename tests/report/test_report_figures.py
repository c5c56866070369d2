from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib import image

from dira import registry
from dira.errors import InputError
from dira.report import style
from dira.report.figures import bar_chart, bar_positions, zoomed_limits
from dira.report.tables import aggregate


def test_bar_chart_writes_a_png_of_the_configured_size(experiment, tmp_path):
    aggregate("chestxray14", experiment, tmp_path / "t.csv", tmp_path / "t.md")
    bar_chart(tmp_path / "t.csv", tmp_path / "fig" / "chestxray14.png", "ChestX-ray14")
    pixels = image.imread(tmp_path / "fig" / "chestxray14.png")
    width, height = (round(inches * style.DPI) for inches in style.FIGURE_SIZE)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.05  # something was drawn
    assert [p.name for p in (tmp_path / "fig").iterdir()] == ["chestxray14.png"]  # no temporary left


def test_bars_are_grouped_by_method():
    table = pd.DataFrame({"method": ["random", "mocov2", "mocov2", "simsiam"]})
    np.testing.assert_allclose(bar_positions(table), [0, 1.6, 2.6, 4.2])


def test_axis_is_zoomed_to_the_error_bars_with_room_for_stars():
    lo, hi = zoomed_limits(np.array([80.1, 80.9]), np.array([80.5, 81.3]))
    assert 79.5 < lo < 80.1 and 81.3 < hi < 82.0


def test_variants_share_their_method_hue_and_darken_towards_dira():
    base, dira = style.bar_colour("mocov2", "base"), style.bar_colour("mocov2", "dira")
    assert sum(dira) < sum(style.bar_colour("mocov2", "dir")) < sum(base)
    assert style.bar_colour("mocov2", "dira") != style.bar_colour("simsiam", "dira")


def test_a_file_that_is_not_a_table_is_rejected(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="not a dira task table"):
        bar_chart(tmp_path / "t.csv", tmp_path / "fig.png", "")
    assert not (tmp_path / "fig.png").exists()


def test_every_registry_init_has_a_colour_of_its_own():
    names = [*registry.BASELINE_INITS, *registry.METHODS]
    assert len({style.bar_colour(name, "") for name in names}) == len(names)


def test_bar_chart_draws_supervised_rows(experiment, run_writer, tmp_path):
    runs = experiment + [run_writer(tmp_path / "runs", "supervised_imagenet", seed, 1.1) for seed in range(2)]
    aggregate("chestxray14", runs, tmp_path / "t.csv", tmp_path / "t.md")
    bar_chart(tmp_path / "t.csv", tmp_path / "chart.png", "")
    assert image.imread(tmp_path / "chart.png")[..., :3].std() > 0.05

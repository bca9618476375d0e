"""The layout check: a table wider than what holds it is found, in a headless browser where one is
installed (the measuring), and by the rule on measured rows everywhere."""
import shutil

import pytest

from grokcircuits import layout


def test_a_table_wider_than_its_holder_overflows():
    rows = [{"table": 600, "holder": 600, "column": 700, "heading": "fits"},
            {"table": 601, "holder": 600, "column": 700, "heading": "rounding"},
            {"table": 900, "holder": 600, "column": 700, "heading": "too wide"}]
    assert [r["heading"] for r in layout.overflowing(rows)] == ["too wide"]


@pytest.mark.skipif(not any(shutil.which(b) for b in layout.BROWSERS), reason="no headless browser installed")
def test_the_browser_measures_a_narrow_and_a_wide_table(tmp_path):
    page = tmp_path / "page.html"
    cell = "a very long cell " * 8
    page.write_text('<html><body><main><div style="width:300px"><table><tr><td>short</td></tr></table></div>'
                    f'<div style="width:300px;overflow-x:auto"><table><tr><td style="white-space:nowrap">{cell}'
                    '</td></tr></table></div></main></body></html>')
    rows = layout.measure_tables(page, 1280)
    assert len(rows) == 2 and rows[0]["holder"] == rows[1]["holder"] == 300
    assert layout.overflowing(rows) == [rows[1]]
    assert not list(tmp_path.glob(".layout-*"))          # the measuring copy is removed


def test_a_missing_page_is_named():
    with pytest.raises(layout.LayoutError, match="does not exist: build the book first"):
        layout.measure_tables("no/such/page.html")

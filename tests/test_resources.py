"""graphdel.resources: the wall time and peak memory of a block, as the process really held it."""

import numpy as np

from graphdel.resources import measure


def test_measure_reports_time_and_memory():
    with measure() as m:
        x = np.ones(20_000_000)  # 160 MB
        x.sum()
    # the peak is the process's resident size at its highest: what it held before plus the 160 MB array
    assert m["wall_time_s"] > 0 and m["peak_mem_mb"] - m["start_mem_mb"] > 150
    assert m["start_mem_mb"] > 30  # torch alone: the peak counts what the process held, not only growth
    assert "RSS" in m["peak_mem_method"] or "ru_maxrss" in m["peak_mem_method"]


def test_freed_memory_is_handed_back_where_the_c_library_allows(monkeypatch):
    from graphdel import resources

    asked = []
    monkeypatch.setattr(resources, "_malloc_trim", lambda: asked.append)
    assert resources.release_freed_memory() is True and asked == [0]  # malloc_trim(0): trim all it can
    monkeypatch.setattr(resources, "_malloc_trim", lambda: None)  # no glibc: nothing to call
    assert resources.release_freed_memory() is False

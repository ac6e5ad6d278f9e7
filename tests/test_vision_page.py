"""AppTest smoke tests of the Vision page: shipped results on first visit, presets, bad input.

Training from the page is tested in a real browser (tests/test_browser_vision.py).
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "2_Vision.py")


def _page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()


def test_first_visit_opens_on_the_shipped_demo_results():
    at = _page()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Vision"
    # The default configuration (compact CNN, demo preset, RBFP) ships under assets/cache/ and is seeded.
    assert at.get("image"), "the gallery shows the shipped demo results without training"
    labels = {m.label: m.value for m in at.metric}
    assert float(labels["Accuracy"].rstrip("%")) > 30
    assert any("perfect-map ceiling" in m.value for m in at.markdown)
    # at the paper's fixed position the box is one of Feature Ablation's patches: the reading says so
    assert any("is exactly one of those patches" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 5


def test_choosing_a_preset_applies_its_geometry():
    at = _page()
    at.selectbox(key="vis_preset").set_value("quick").run()
    assert not at.exception
    assert at.number_input(key="vis_canvas").value == 112 and at.number_input(key="vis_fg_size").value == 32
    assert any(b.label == "Train" for b in at.button)


def test_bad_input_shows_an_error_and_keeps_the_other_settings():
    at = _page()
    at.number_input(key="vis_seed").set_value(5)
    at.number_input(key="vis_fg_size").set_value(300).run()
    assert not at.exception
    assert any(
        "The 'foreground_size' parameter of VisionDataConfig must be an int in [4, 224]" in e.value for e in at.error
    )
    assert at.number_input(key="vis_seed").value == 5
    at.number_input(key="vis_fg_size").set_value(32).run()
    assert not at.error


def test_a_method_that_does_not_suit_the_architecture_is_explained():
    at = _page()
    at.selectbox(key="vis_model").set_value("resnet18").run()
    assert not at.exception
    assert any("DeepLift is unavailable for resnet18" in w.value for w in at.warning)


def test_a_data_root_without_the_published_layout_is_explained_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path))
    (tmp_path / "notes.txt").write_text("x")
    at = _page()
    at.selectbox(key="vis_foreground").set_value("published")
    at.text_input(key="vis_data_root").set_value(str(tmp_path)).run()
    assert not at.exception
    msg = " ".join(e.value for e in at.error)
    assert "published ChaosMining vision layout" in msg and "Found in data_root: notes.txt" in msg


def test_a_data_root_outside_the_data_roots_is_refused_without_listing_it(tmp_path, monkeypatch):
    """The issue's leak: any folder typed as the data root had its first 12 names listed."""
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path / "data"))
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "diary.txt").write_text("x")
    at = _page()
    at.selectbox(key="vis_foreground").set_value("published")
    for typed in (str(tmp_path / "private"), f"{tmp_path}/data/../private", "/etc"):
        at.text_input(key="vis_data_root").set_value(typed).run()
        assert not at.exception
        msg = " ".join(e.value for e in at.error)
        assert "The 'data root' parameter of the app must be a path under one of the data roots" in msg
        assert "diary" not in msg and "passwd" not in msg and "Found in data_root" not in msg

"""Shareable links (ui/links.py): the URL carries each page's settings; a bad value is a warning, not a traceback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import links

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "pages"


# ---- the field codec: every value survives a round trip, anything else is refused ---------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        (links.integer(0, 10), 7),
        (links.number(1e-6, 10.0), 1e-6),
        (links.number(0.0, 1.0), 0.1 + 0.2),  # repr keeps every digit
        (links.flag(), False),
        (links.one_of(["a", "b"]), "b"),
        (links.some_of(["x", "y", "z"]), ["z", "x"]),
        (links.some_of(["x", "y"]), []),
        (links.text(), "0.5*sin(a) + b**2"),
    ],
)
def test_values_round_trip_through_the_url(field, value):
    assert links.parse(field, links.encode(field, value)) == value


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        (links.integer(0, 10), "11"),
        (links.integer(0, 10), "-1"),
        (links.integer(0, 10), "2.5"),
        (links.integer(0, 10), "abc"),
        (links.number(0.0, 1.0), "nan"),
        (links.number(0.0, 1.0), "inf"),
        (links.number(0.0, 1.0), "1.5"),
        (links.flag(), "maybe"),
        (links.one_of(["a", "b"]), "c"),
        (links.some_of(["x", "y"]), "x,q"),
        (links.some_of(["x", "y"]), "x,x"),
        (links.text(5), "toolong"),
        (links.path(), "/proc/self/environ"),
        (links.path(), "../../etc"),
    ],
)
def test_malformed_or_out_of_range_values_are_refused(field, raw):
    with pytest.raises(ValueError):
        links.parse(field, raw)


def test_a_path_under_the_data_roots_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("CHAOSMINING_DATA_ROOTS", str(tmp_path))
    assert links.parse(links.path(), str(tmp_path / "x.csv")) == str(tmp_path / "x.csv")
    assert links.parse(links.path(), "") == ""


def test_method_parameters_come_from_the_registry():
    fields = links.method_param_fields(["integrated_gradients", "saliency"])
    assert set(fields) == {"_param_integrated_gradients_steps", "_param_integrated_gradients_integration"}
    steps = fields["_param_integrated_gradients_steps"]
    assert (steps.kind, steps.low, steps.high, steps.name) == ("int", 1, 1000, "integrated_gradients.steps")


# ---- every page: a link sets the configuration, a bad value warns, a change updates the URL ----------------------
# page, a good link parameter and the (widget kind, key, value) it sets, a malformed one, and a change to make.
CASES = {
    "symbolic": (
        "1_Symbolic_functions.py",
        ("formula", "3", "selectbox", "sym_fid", "3"),
        ("noise", "lots", "number_input", "sym_noise", 100),
        ("number_input", "sym_epochs", 77, "epochs", "77"),
    ),
    "vision": (
        "2_Vision.py",
        ("seed", "5", "number_input", "vis_seed", 5),
        ("canvas", "99999", "number_input", "vis_canvas", None),
        ("selectbox", "vis_position", "random", "position", "random"),
    ),
    "audio": (
        "3_Audio.py",
        ("channels", "4", "number_input", "aud_channels", 4),
        ("model", "no_such_model", "selectbox", "aud_model", "tcn"),
        ("number_input", "aud_seed", 9, "seed", "9"),
    ),
    "rfe": (
        "4_Feature_selection.py",
        ("formula", "7", "selectbox", "rfe_formula", "7"),
        ("drop_rate", "half", "slider", "rfe_drop_rate", 0.5),
        ("number_input", "rfe_target", 3, "target", "3"),
    ),
    "evaluation": (
        "5_Evaluate_the_evaluators.py",
        ("toy_repeats", "2", "number_input", "ev_toy_repeats", 2),
        ("epochs", "-4", "number_input", "ev_epochs", 0),
        ("number_input", "ev_seed", 11, "seed", "11"),
    ),
}


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PAGES / name), default_timeout=180)


@pytest.mark.parametrize("case", list(CASES))
def test_a_link_sets_the_page_and_a_change_updates_the_link(case):
    page, good, bad, change = CASES[case]
    at = _page(page)
    at.query_params[good[0]] = good[1]
    at.query_params[bad[0]] = bad[1]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert getattr(at, good[2])(key=good[3]).value == good[4]
    kept = getattr(at, bad[2])(key=bad[3]).value
    if bad[4] is not None:
        assert kept == bad[4]
    warning = [w.value for w in at.warning if "of the link" in w.value]
    assert len(warning) == 1 and f"'{bad[0]}' parameter" in warning[0] and repr(bad[1]) in warning[0]
    assert repr(str(kept)) in warning[0], "the warning names the value used instead"
    assert at.query_params.get(good[0]) == good[1]
    assert bad[0] not in at.query_params, "the bad value leaves the URL"

    getattr(at, change[0])(key=change[1]).set_value(change[2]).run()
    assert not at.exception
    assert at.query_params.get(change[3]) == change[4]
    assert at.query_params.get(good[0]) == good[1]
    assert not [w for w in at.warning if "of the link" in w.value], "the warning belongs to the opening run"
    assert any(change[3] + "=" + change[4] in c.value for c in at.code), "the share box shows the link"


def test_only_settings_that_differ_from_the_defaults_are_in_the_link():
    at = _page("1_Symbolic_functions.py").run()
    assert not at.query_params
    at.number_input(key="sym_noise").set_value(60).run()
    assert at.query_params == {"noise": "60"}
    at.number_input(key="sym_noise").set_value(100).run()  # back to the default: gone again
    assert not at.query_params


def test_a_link_opens_a_tab_and_method_parameters_and_drops_unknown_parameters():
    at = _page("1_Symbolic_functions.py")
    at.query_params.update(
        {"tab": "What-if sweep", "methods": "saliency,integrated_gradients", "integrated_gradients.steps": "7"}
    )
    at.query_params["utm_source"] = "mail"
    at.run()
    assert not at.exception
    assert at.session_state["sym_tab"] == "What-if sweep"
    assert at.multiselect(key="sym_methods").value == ["saliency", "integrated_gradients"]
    assert at.number_input(key="sym__param_integrated_gradients_steps").value == 7
    assert any("`'utm_source'` is not a setting of this page" in w.value for w in at.warning)
    assert "utm_source" not in at.query_params
    assert at.query_params["integrated_gradients.steps"] == "7"


def test_text_from_a_link_is_shown_as_code_never_as_markdown():
    at = _page("1_Symbolic_functions.py")
    at.query_params["noise"] = "[click](http://evil.example) $x$"
    at.run()
    assert not at.exception
    assert any("Got `'[click](http://evil.example) $x$'` instead" in w.value for w in at.warning)


def test_a_link_with_a_path_outside_the_data_roots_leaves_the_field_empty():
    at = _page("2_Vision.py")
    at.query_params["data_root"] = "/etc"
    at.run()
    assert not at.exception
    assert at.text_input(key="vis_data_root").value == ""
    assert any("'data_root' parameter of the link must be a path under the data roots" in w.value for w in at.warning)


# ---- the specs agree with the widgets they describe -----------------------------------------------------------------
DATA_BOUNDED = {"vis_shown"}  # at most the result's gallery size; the page lowers a larger value itself


@pytest.mark.parametrize("case", list(CASES))
def test_each_link_field_has_the_bounds_and_choices_of_its_widget(case):
    page = CASES[case][0]
    at = _page(page).run()
    assert not at.exception
    prefix = {"symbolic": "sym_", "vision": "vis_", "audio": "aud_", "rfe": "rfe_", "evaluation": "ev_"}[case]
    fields = _spec_of(page)
    checked = 0
    for w in [*at.number_input, *at.slider]:
        f = fields.get(w.key.removeprefix(prefix)) if w.key and w.key.startswith(prefix) else None
        if f is not None and w.key not in DATA_BOUNDED:
            assert (w.min, w.max) == (f.low, f.high), w.key
            checked += 1
    for w in [*at.selectbox, *at.radio]:
        f = fields.get(w.key.removeprefix(prefix)) if w.key and w.key.startswith(prefix) else None
        if f is not None:
            assert w.options == [str(w.format_func(o)) for o in f.options()], w.key
            checked += 1
    assert checked >= 3


def _spec_of(page: str) -> dict[str, links.Field]:
    """The LINK dict of a page: its source up to LINK, without the Streamlit calls (a page is no module)."""
    source = (PAGES / page).read_text()
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "LINK" for t in node.targets):
            break
    else:
        raise AssertionError(f"{page} has no LINK spec")
    prelude = [n for n in tree.body[: tree.body.index(node) + 1] if not _is_streamlit_call(n)]
    namespace: dict = {}
    exec(compile(ast.Module(body=prelude, type_ignores=[]), page, "exec"), namespace)  # noqa: S102 - our own page
    return namespace["LINK"]


def _is_streamlit_call(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)

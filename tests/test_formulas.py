"""Formulas: the paper's table, analytic derivatives, and the whitelist that guards typed input."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from chaosmining.data.formulas import FORMULAS, PAPER_FORMULAS, get_formula, parse_formula
from chaosmining.errors import FormulaError


def test_all_fifteen_paper_formulas_are_registered_with_declared_columns():
    assert FORMULAS.names() == [str(i) for i in range(1, 16)]
    for fid, (n, _text) in PAPER_FORMULAS.items():
        f = FORMULAS.get(str(fid))
        assert f.n_columns == n
        assert f.formula_id == fid


def test_formula_13_relevant_features_are_its_free_symbols_and_the_difference_is_explained():
    f = get_formula(13)
    assert f.n_columns == 8
    assert f.relevant == (0, 1, 2, 3, 4, 5, 6)  # h never appears
    assert "h" in f.note and "k = 7" in f.note
    assert all(get_formula(i).note is None for i in range(1, 16) if i != 13)


@pytest.mark.parametrize("fid", range(1, 16))
def test_sympy_derivative_agrees_with_finite_differences(fid):
    f = get_formula(fid)
    rng = np.random.default_rng(fid)
    X = np.clip(rng.standard_normal((64, f.n_columns)) * 0.33, -0.9, 0.9)
    grad = f.gradient(X)
    h = 1e-6
    for i in range(f.n_columns):
        Xp, Xm = X.copy(), X.copy()
        Xp[:, i] += h
        Xm[:, i] -= h
        fd = (f(Xp) - f(Xm)) / (2 * h)
        np.testing.assert_allclose(grad[:, i], fd, rtol=1e-5, atol=1e-6)


def test_latex_rendering_and_caret_as_power():
    f = parse_formula("a^2 + sin(b)")
    assert f.expr == sympy.Symbol("a", real=True) ** 2 + sympy.sin(sympy.Symbol("b", real=True))
    assert "\\sin" in f.latex and "\\mathsf{a}" in f.latex


def test_equivalent_formulas_share_a_canonical_key():
    assert parse_formula("a + b").key == parse_formula("b+a").key
    assert parse_formula("a + b").key != parse_formula("a - b").key


def test_typed_formula_columns_and_relevant_set():
    f = parse_formula("b*d")
    assert f.n_columns == 4 and f.relevant == (1, 3)
    assert "a, c" in f.note


INJECTIONS = [
    "__import__('os').system('touch /tmp/chaosmining-pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "a.__class__",
    "a.real",
    "lambda: 1",
    "(lambda x: x)(a)",
    "[x for x in (a,)]",
    "open('/tmp/chaosmining-pwned', 'w')",
    "eval('1')",
    "exec('1')",
    "getattr(a, 'x')",
    "sin(a, b)",
    "sin(x=a)",
    "sin(*a)",
    "a if b else c",
    "a < b",
    "a and b",
    "a; b",
    "import os",
    "k + 1",
    "x",
    "'text'",
    "b'bytes'",
    "1j * a",
    "{a: 1}",
    "a[0]",
    "9**9**9",
    "a ** 1000",
    "2a",
    "",
    "   ",
    "1 + 2",
    "a / 0",
    "sin" * 200,
    "sin(" * 50 + "a" + ")" * 50,
    "Symbol('a')",
    "sympify('a')",
    "a @ b",
    "a // b",
    "a % b",
    "~a",
    "not a",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_attempts_and_bad_syntax_are_rejected_with_a_message(text, tmp_path):
    with pytest.raises(FormulaError) as exc:
        parse_formula(text)
    msg = str(exc.value)
    assert msg.startswith("The 'formula' parameter")
    assert "Allowed" in msg or "must" in msg


def test_rejected_formulas_execute_nothing(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    calls = []
    monkeypatch.setattr(
        "builtins.__import__", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(AssertionError("import called"))
    )
    for text in [f"open('{marker}', 'w')", f"__import__('pathlib').Path('{marker}').touch()"]:
        with pytest.raises(FormulaError):
            parse_formula(text)
    monkeypatch.undo()
    assert not marker.exists() and not calls


def test_get_formula_rejects_out_of_range_ids_and_non_strings():
    for bad in (0, 16, "99", True, 3.5, None):
        with pytest.raises(FormulaError, match="formula"):
            get_formula(bad)

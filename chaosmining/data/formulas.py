"""Symbolic formulas: the paper's 15 (Table 5) and any formula a user types, parsed safely.

A typed formula is untrusted input from a browser. It is parsed with :func:`ast.parse` in ``eval``
mode and every node is checked against a whitelist of syntax (numbers, the variables ``a``..``j``,
``+ - * / **``, unary minus, calls of whitelisted functions) *before* anything is built. The sympy
expression is then constructed node by node from the checked tree: nothing is ever passed to ``eval``,
``sympify`` or ``parse_expr``.

Variable ``a`` is feature 0, ``b`` feature 1, and so on. The formula's *relevant* features are its
free symbols; when a paper formula declares more columns than it uses (formula 13 declares 8 but
never uses ``h``), the unused column is an ordinary noise feature and :attr:`Formula.note` says so.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy

from ..errors import FormulaError
from ..registry import Registry

__all__ = [
    "Formula",
    "PAPER_FORMULAS",
    "FORMULAS",
    "VARIABLES",
    "ALLOWED_FUNCTIONS",
    "parse_formula",
    "get_formula",
    "MAX_FORMULA_LENGTH",
]

VARIABLES: tuple[str, ...] = tuple("abcdefghij")
MAX_FORMULA_LENGTH = 400
MAX_DEPTH = 40
MAX_EXPONENT = 64
MAX_CONSTANT = 1e6

_SYMBOLS = {name: sympy.Symbol(name, real=True) for name in VARIABLES}
_CONSTANTS = {"E": sympy.E, "pi": sympy.pi}
# Variables are typeset upright sans-serif so that the variable e is never mistaken for Euler's number.
_LATEX_NAMES = {sym: rf"\mathsf{{{name}}}" for name, sym in _SYMBOLS.items()}

# name -> (sympy function, number of arguments)
ALLOWED_FUNCTIONS: dict[str, tuple[Callable[..., sympy.Expr], int]] = {
    "sin": (sympy.sin, 1),
    "cos": (sympy.cos, 1),
    "tan": (sympy.tan, 1),
    "cot": (sympy.cot, 1),
    "asin": (sympy.asin, 1),
    "acos": (sympy.acos, 1),
    "atan": (sympy.atan, 1),
    "sinh": (sympy.sinh, 1),
    "cosh": (sympy.cosh, 1),
    "tanh": (sympy.tanh, 1),
    "exp": (sympy.exp, 1),
    "log": (sympy.log, 1),
    "sqrt": (sympy.sqrt, 1),
    "abs": (sympy.Abs, 1),
    "Abs": (sympy.Abs, 1),
    "sign": (sympy.sign, 1),
    "erf": (sympy.erf, 1),
    "Max": (sympy.Max, 2),
    "Min": (sympy.Min, 2),
}

_BINOPS = {ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow}


def _reject(text: str, why: str) -> FormulaError:
    allowed = (
        f"variables {', '.join(VARIABLES)}; constants E, pi; numbers; + - * / ** (or ^); "
        f"functions {', '.join(sorted(ALLOWED_FUNCTIONS))}"
    )
    return FormulaError(f"The 'formula' parameter was rejected: {why}. Allowed: {allowed}. Got {text!r} instead.")


def _check_tree(node: ast.AST, text: str, depth: int = 0) -> None:
    """Raise :class:`FormulaError` unless every node is whitelisted."""
    if depth > MAX_DEPTH:
        raise _reject(text, f"it is nested more than {MAX_DEPTH} levels deep")
    if isinstance(node, ast.Expression):
        _check_tree(node.body, text, depth + 1)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise _reject(text, f"the operator {type(node.op).__name__} is not allowed")
        _check_tree(node.left, text, depth + 1)
        _check_tree(node.right, text, depth + 1)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise _reject(text, f"the unary operator {type(node.op).__name__} is not allowed")
        _check_tree(node.operand, text, depth + 1)
    elif isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _reject(text, f"the constant {node.value!r} is not a real number")
        if not math.isfinite(node.value) or abs(node.value) > MAX_CONSTANT:
            raise _reject(text, f"the number {node.value!r} is larger than {MAX_CONSTANT:g}")
    elif isinstance(node, ast.Name):
        if node.id in _SYMBOLS or node.id in ("E", "pi"):
            return
        if node.id in ALLOWED_FUNCTIONS:
            raise _reject(text, f"the function {node.id!r} must be called with parentheses")
        raise _reject(text, f"the name {node.id!r} is not an allowed variable, constant or function")
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name):
            raise _reject(text, "only direct calls of whitelisted functions are allowed")
        if node.func.id not in ALLOWED_FUNCTIONS:
            raise _reject(text, f"the function {node.func.id!r} is not allowed")
        if node.keywords:
            raise _reject(text, "keyword arguments are not allowed")
        n_args = ALLOWED_FUNCTIONS[node.func.id][1]
        if len(node.args) != n_args or any(isinstance(a, ast.Starred) for a in node.args):
            raise _reject(text, f"{node.func.id} takes exactly {n_args} argument(s)")
        for arg in node.args:
            _check_tree(arg, text, depth + 1)
    else:
        raise _reject(text, f"the syntax {type(node).__name__} is not allowed")


def _is_number(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp):
        return _is_number(node.operand)
    return isinstance(node, ast.Constant)


def _build(node: ast.AST, text: str) -> sympy.Expr:
    """Build the sympy expression from an already checked tree."""
    if isinstance(node, ast.Expression):
        return _build(node.body, text)
    if isinstance(node, ast.Constant):
        v = node.value
        return sympy.Integer(v) if isinstance(v, int) else sympy.Float(repr(v))
    if isinstance(node, ast.Name):
        if node.id in _SYMBOLS:
            return _SYMBOLS[node.id]
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp):
        operand = _build(node.operand, text)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call):
        fn = ALLOWED_FUNCTIONS[node.func.id][0]  # type: ignore[union-attr]
        return fn(*[_build(a, text) for a in node.args])
    if isinstance(node, ast.BinOp):
        left = _build(node.left, text)
        if isinstance(node.op, ast.Pow):
            right = _build(node.right, text)
            # Exponents are bounded so that a constant tower such as 9**9**9 is never expanded.
            if right.is_number:
                r = float(right)
                if abs(r) > MAX_EXPONENT:
                    raise _reject(text, f"a constant exponent must be at most {MAX_EXPONENT} in size")
                if left.is_number:
                    b = float(left)
                    if b <= 0 or abs(math.log10(b) * r) > 2 * math.log10(MAX_CONSTANT):
                        raise _reject(text, "a power of constants is too large or not real")
            return sympy.Pow(left, right)
        right = _build(node.right, text)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right.is_number and right == 0:
            raise _reject(text, "it divides by the constant 0")
        return left / right
    raise _reject(text, f"the syntax {type(node).__name__} is not allowed")  # pragma: no cover


@dataclass(frozen=True, eq=False)
class Formula:
    """A parsed formula over features ``a``..``j``.

    Attributes
    ----------
    text : the formula as given.
    expr : the sympy expression.
    n_columns : columns of the data that belong to the formula (declared count for paper formulas,
        otherwise the index of the highest variable used plus one). Column ``i`` is variable
        ``VARIABLES[i]``; noise features follow after ``n_columns``.
    relevant : indices of the features that actually appear (the free symbols): the ground truth.
    formula_id : 1..15 for the paper's formulas, ``None`` for a typed one.
    note : a sentence for the user when declared columns and free symbols differ.
    """

    text: str
    expr: sympy.Expr
    n_columns: int
    relevant: tuple[int, ...]
    formula_id: int | None = None
    note: str | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def symbols(self) -> tuple[sympy.Symbol, ...]:
        return tuple(_SYMBOLS[VARIABLES[i]] for i in range(self.n_columns))

    @property
    def latex(self) -> str:
        return sympy.latex(self.expr, symbol_names=_LATEX_NAMES)

    @property
    def name(self) -> str:
        return f"formula {self.formula_id}" if self.formula_id else self.text

    @property
    def key(self) -> str:
        """A canonical string used in configuration hashes."""
        return str(self.formula_id) if self.formula_id else sympy.srepr(self.expr)

    def _lambdified(self, expr: sympy.Expr) -> Callable[..., np.ndarray]:
        key = sympy.srepr(expr)
        fn = self._cache.get(key)
        if fn is None:
            # The expression was built from the checked tree, so lambdify only prints whitelisted code.
            fn = sympy.lambdify(self.symbols, expr, modules="numpy")
            self._cache[key] = fn
        return fn

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """Evaluate on the first ``n_columns`` columns of ``X`` (shape ``(n, >= n_columns)``)."""
        X = np.asarray(X, dtype=np.float64)
        cols = [X[:, i] for i in range(self.n_columns)]
        with np.errstate(all="ignore"):
            out = self._lambdified(self.expr)(*cols)
        return np.broadcast_to(np.asarray(out, dtype=np.float64), (X.shape[0],)).copy()

    def derivative(self, i: int) -> sympy.Expr:
        return sympy.diff(self.expr, self.symbols[i])

    def gradient(self, X: np.ndarray) -> np.ndarray:
        """Analytic partial derivatives, shape ``(n, n_columns)`` (zero for unused columns)."""
        X = np.asarray(X, dtype=np.float64)
        cols = [X[:, i] for i in range(self.n_columns)]
        out = np.zeros((X.shape[0], self.n_columns))
        with np.errstate(all="ignore"):
            for i in self.relevant:
                out[:, i] = self._lambdified(self.derivative(i))(*cols)
        return out


def _note(text: str, n_columns: int, relevant: tuple[int, ...], formula_id: int | None) -> str | None:
    unused = [VARIABLES[i] for i in range(n_columns) if i not in relevant]
    if not unused:
        return None
    who = f"Formula {formula_id} declares" if formula_id else "This formula spans"
    return (
        f"{who} {n_columns} features but {', '.join(unused)} never appear(s) in the expression: "
        f"the relevant features are its {len(relevant)} free symbols, and {', '.join(unused)} "
        f"is treated as a noise feature (FPrec uses k = {len(relevant)})."
    )


def _caret_to_power(text: str) -> str:
    """Read ``^`` as power at the token level, so that ``a^2 + b`` keeps power's precedence."""
    if "^" not in text:
        return text
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text  # ast.parse reports the syntax error
    out = [(t.type, "**" if t.type == tokenize.OP and t.string == "^" else t.string) for t in tokens]
    return tokenize.untokenize(out)


def parse_formula(text: str, *, n_columns: int | None = None, formula_id: int | None = None) -> Formula:
    """Check ``text`` against the whitelist, then build a :class:`Formula`.

    Parameters
    ----------
    text : str
        For example ``"0.5*sin(a) - b**3"``. ``^`` is read as power.
    n_columns : int, optional
        Declared number of formula columns; defaults to the highest variable used plus one.

    Raises
    ------
    FormulaError
        For syntax errors, unknown names or functions, attribute access, lambdas, calls of
        non-whitelisted callables, huge constants, or a formula without variables.

    Examples
    --------
    >>> parse_formula("a**2 + sin(c)").relevant
    (0, 2)
    """
    if not isinstance(text, str):
        raise FormulaError(f"The 'formula' parameter must be a str. Got {text!r} instead.")
    stripped = text.strip()
    if not stripped:
        raise _reject(text, "it is empty")
    if len(stripped) > MAX_FORMULA_LENGTH:
        raise _reject(text[:60] + "...", f"it is longer than {MAX_FORMULA_LENGTH} characters")
    if "__" in stripped:
        raise _reject(text, "double underscores are not allowed")
    try:
        tree = ast.parse(_caret_to_power(stripped), mode="eval")
    except SyntaxError as exc:
        raise _reject(text, f"it is not valid syntax ({exc.msg}); write products explicitly, e.g. 2*a") from None
    _check_tree(tree, text)
    expr = _build(tree, text)
    free = sorted(VARIABLES.index(s.name) for s in expr.free_symbols)
    if not free:
        raise _reject(text, "it uses none of the variables a..j")
    needed = free[-1] + 1
    if n_columns is None:
        n_columns = needed
    elif n_columns < needed:
        raise FormulaError(f"Formula {text!r} uses {VARIABLES[needed - 1]} but declares only {n_columns} columns.")
    relevant = tuple(free)
    return Formula(
        text=stripped,
        expr=expr,
        n_columns=n_columns,
        relevant=relevant,
        formula_id=formula_id,
        note=_note(stripped, n_columns, relevant, formula_id),
    )


# (declared number of features, text) as in the paper's Table 5 and the original data file.
PAPER_FORMULAS: dict[int, tuple[int, str]] = {
    1: (1, "a"),
    2: (1, "a**2"),
    3: (1, "2/(a**2+1)-1"),
    4: (1, "sin(a)"),
    5: (1, "E**a-1.5"),
    6: (1, "2*log(a**2+1)-1"),
    7: (2, "0.25*a**3+0.75*b**2"),
    8: (3, "0.5*a**3+0.75*b**2+a*c"),
    9: (4, "0.5*E**a*sin(b)-0.25*cos(d)**5/(c**2+1)"),
    10: (5, "0.5*(a-b)**2+0.2*(c+d*e)**3-0.5"),
    11: (6, "0.5*cos(a)*tan(b)-log((c-d)**2+1)/((e+f+1)**2+1)"),
    12: (7, "0.5*(b-c)**2/(a**2+1)+tan(d)*log(e**2+1)+0.5*cos(f)*sin(g)"),
    13: (8, "a+(1/2)*b**2+(1/3)*c**3+(1/4)*d**4+(1/5)*e**5+(1/6)*f**6+(1/7)*f**7+(1/8)*g**8"),
    14: (9, "0.5*(a-1)/(b**2+1)-0.5*c**3/(d**2+1)+0.5*e**5/(f**2+1)-0.5*g**7/(h**2+1)+0.5*tan(i)+0.5"),
    15: (10, "0.5*sin(a)-0.5*b**3-log(c**2+1)+0.5*((d+e)**2+1)**(1/2)-0.5*cos(f)*g+h*i**2/((1-j)**2+1)-0.5"),
}

FORMULAS: Registry[Formula] = Registry("formula")
for _id, (_n, _text) in PAPER_FORMULAS.items():
    FORMULAS.register(str(_id), parse_formula(_text, n_columns=_n, formula_id=_id))


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str) -> Formula:
    return parse_formula(text)


def get_formula(spec: str | int) -> Formula:
    """A paper formula by ID (``3`` or ``"3"``) or a typed expression (checked, then parsed)."""
    if isinstance(spec, bool):
        raise FormulaError(f"The 'formula' parameter must be a paper formula ID 1-15 or an expression. Got {spec!r}.")
    if isinstance(spec, int):
        spec = str(spec)
    if not isinstance(spec, str):
        raise FormulaError(f"The 'formula' parameter must be a paper formula ID 1-15 or an expression. Got {spec!r}.")
    s = spec.strip()
    if s in FORMULAS:
        return FORMULAS.get(s)
    if s.isdigit():
        raise FormulaError(
            f"The 'formula' parameter must be a paper formula ID in 1-15 or an expression. Got {spec!r} instead."
        )
    return _parse_cached(s)

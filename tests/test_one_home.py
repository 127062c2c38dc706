"""One home for each primitive: a scan of src/brainlike that fails, naming file:line, when a module
outside a primitive's home defines its own Pearson/correlation, z-score, fold or id-alignment helper.

Homes: column-wise Pearson / Spearman / R² -> ``brainlike/metrics/correlation.py`` (RDM correlation
distances -> ``brainlike/metrics/rsa.py``); train-statistics z-scoring -> ``brainlike/_zscore.py``;
cross-validation folds -> ``brainlike/folds.py``; id alignment -> ``brainlike/ids.py``.

A function is flagged by its *name* (``_pearson_cols``, ``zscore_train``, ``grouped_folds``,
``align_rows``, ...) unless its body calls the home (a thin, named delegate), and by its *body
shape* wherever it stands: ``np.corrcoef`` / ``pearsonr`` / ``(a * b).sum() / np.sqrt(...)``;
``(x - x.mean(0)) / x.std(0)`` (also through names bound to ``.mean``/``.std``); ``KFold`` /
``GroupKFold`` / ``np.array_split(rng.permutation(n), k)``; a position table built from ids
(``{i: k for k, i in enumerate(ids)}``) or ``ids.index(...)`` / ``np.searchsorted(ids, ...)``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "brainlike"

HOMES = {
    "pearson": {"metrics/correlation.py", "metrics/rsa.py"},
    "zscore": {"_zscore.py"},
    "folds": {"folds.py"},
    "ids": {"ids.py"},
}
HOME_API = {
    "pearson": {"pearson", "spearman", "r2", "selection_score", "pearson_columns", "column_score"},
    "zscore": {"train_stats", "zscore", "backend_train_stats", "apply"},
    "folds": {"kfold", "group_kfold", "make_splits", "inner_folds"},
    "ids": {"align", "same_ids", "as_ids"},
}
NAMES = {
    "pearson": re.compile(r"pearson|corrcoef|(^|_)(corr|r2|r_squared|rsquared)(_cols?|_columns?|_scores?)?$"
                          r"|(^|_)(columns?|cols?|rows?)_?(corr\w*|r2|scores?)$"),
    "zscore": re.compile(r"(^|_)(z_?scor\w*|standardi[sz]e\w*|train_mean_std|mean_std)(_|$)"),
    "folds": re.compile(r"(^|_)(k_?folds?|folds|cv_splits|group_folds|grouped_folds)(_|$)"),
    "ids": re.compile(r"(^|_)(align\w*|match_ids|ids_to_rows|rows_for_ids|order_by_ids?|reorder_ids)(_|$)"),
}


def _attr(node) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _calls(node, names) -> bool:
    return any(isinstance(n, ast.Call) and _attr(n) in names for n in ast.walk(node))


def _bound(fn, method) -> set[str]:
    """Names assigned (anywhere in fn) from an expression calling ``.method(...)``."""
    out = set()
    for n in ast.walk(fn):
        if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and n.value is not None and _calls(n.value, {method}):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            for t in targets:
                for e in ast.walk(t):
                    if isinstance(e, ast.Name):
                        out.add(e.id)
    return out


def _is(node, method, names) -> bool:
    """node is a ``.method(...)`` call, a name bound to one, or such a thing plus/max a constant."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _is(node.left, method, names) or _is(node.right, method, names)
    if isinstance(node, ast.Call) and _attr(node) == method:
        return True
    if isinstance(node, ast.Call) and _attr(node) in {"maximum", "where", "astype"}:
        return any(_is(a, method, names) for a in [*node.args, getattr(node.func, "value", None)] if a is not None)
    return isinstance(node, ast.Name) and node.id in names


def _idish(node) -> bool:
    text = ast.unparse(node).lower()
    return bool(re.search(r"(^|[^a-z])(ids?|\w*_ids?|stimulus_ids|ids_\w*)([^a-z]|$)", text))


def _shapes(fn):
    """(kind, line, what) for every body-shape hit in function ``fn``."""
    means, stds, roots = _bound(fn, "mean"), _bound(fn, "std"), _bound(fn, "sqrt")
    sums = _bound(fn, "sum") | _bound(fn, "einsum")
    for n in ast.walk(fn):
        if isinstance(n, ast.Call):
            name = _attr(n)
            if name in {"corrcoef", "pearsonr"}:
                yield "pearson", n.lineno, f"calls {name}"
            elif name in {"KFold", "GroupKFold", "StratifiedKFold", "ShuffleSplit", "RepeatedKFold"}:
                yield "folds", n.lineno, f"builds {name}"
            elif name == "array_split" and n.args and _calls(n.args[0], {"permutation", "shuffle"}):
                yield "folds", n.lineno, "splits a permutation into folds"
            elif name == "searchsorted" and n.args and _idish(n.args[0]):
                yield "ids", n.lineno, "finds rows by np.searchsorted on ids"
            elif name == "index" and isinstance(n.func, ast.Attribute) and _idish(n.func.value):
                yield "ids", n.lineno, "finds rows by ids.index()"
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
            left, right = n.left, n.right
            is_root = (isinstance(right, ast.Call) and _attr(right) == "sqrt") or \
                (isinstance(right, ast.Name) and right.id in roots)
            is_sum = (isinstance(left, ast.Call) and _attr(left) in {"sum", "einsum", "dot"}) or \
                (isinstance(left, ast.Name) and left.id in sums)
            if is_root and is_sum:
                yield "pearson", n.lineno, "hand-written Pearson r: sum of products / sqrt(...)"
            elif isinstance(left, ast.BinOp) and isinstance(left.op, ast.Sub) and _is(left.right, "mean", means) \
                    and _is(right, "std", stds):
                yield "zscore", n.lineno, "z-scores (x - mean) / std"
        elif isinstance(n, ast.DictComp) and isinstance(n.value, ast.Name) and n.generators:
            g = n.generators[0]
            if isinstance(g.iter, ast.Call) and _attr(g.iter) == "enumerate" and g.iter.args and _idish(g.iter.args[0]) \
                    and isinstance(g.target, ast.Tuple) and ast.unparse(g.target.elts[0]) == n.value.id:
                yield "ids", n.lineno, "builds an id -> row table"


def _functions(tree):
    """Top-level functions and methods, each once (nested helpers are part of their function)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef)):
            for child in node.body:
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield child


def scan(root: Path = SRC) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for fn in _functions(tree):
            is_property = any(_attr(d) in {"property", "cached_property"} for d in fn.decorator_list)
            for kind, pattern in NAMES.items():
                if rel in HOMES[kind] or is_property or not pattern.search(fn.name):
                    continue
                if not _calls(fn, HOME_API[kind]):
                    problems.append(f"{rel}:{fn.lineno}: {fn.name}() is a {kind} helper outside its home "
                                    f"{sorted(HOMES[kind])} (call the home instead)")
            for kind, line, what in _shapes(fn):
                if rel not in HOMES[kind]:
                    problems.append(f"{rel}:{line}: {fn.name}() {what} outside its home {sorted(HOMES[kind])}")
    return sorted(set(problems))


def test_no_primitive_outside_its_home():
    problems = scan()
    assert not problems, "primitives written outside their home:\n" + "\n".join(problems)


def test_the_scan_catches_each_kind(tmp_path):
    (tmp_path / "metrics").mkdir()
    (tmp_path / "room.py").write_text(
        "import numpy as np\n"
        "def _pearson_cols(a, b):\n"
        "    a = a - a.mean(0); b = b - b.mean(0)\n"
        "    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))\n"
        "def score(x, y):\n"
        "    return np.corrcoef(x, y)[0, 1]\n"
        "def prep(X, tr):\n"
        "    mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-6\n"
        "    return (X - mu) / sd\n"
        "def zscore_train(x):\n"
        "    return x\n"
        "def _folds(n, k, seed):\n"
        "    return np.array_split(np.random.default_rng(seed).permutation(n), k)\n"
        "def cv(n):\n"
        "    from sklearn.model_selection import KFold\n"
        "    return list(KFold(5).split(np.zeros(n)))\n"
        "def rows(ids, wanted):\n"
        "    pos = {s: i for i, s in enumerate(ids)}\n"
        "    return [pos[w] for w in wanted]\n"
        "def align_rows(a, b):\n"
        "    return [list(a).index(x) for x in b]\n"
        "def by_names(yt, yp):\n"
        "    num = (yt * yp).sum(axis=-2)\n"
        "    den = np.sqrt((yt**2).sum(axis=-2) * (yp**2).sum(axis=-2))\n"
        "    return num / den\n"
        "def delegate_pearson(a, b):\n"
        "    from brainlike.metrics import pearson\n"
        "    return pearson(a, b, nan_policy='omit')\n"
    )
    (tmp_path / "metrics" / "correlation.py").write_text(
        "import numpy as np\ndef _pearson(a, b):\n    return np.corrcoef(a, b)\n")
    found = "\n".join(scan(tmp_path))
    for expected in ["room.py:2: _pearson_cols() is a pearson helper", "room.py:4: _pearson_cols() hand-written",
                     "room.py:6: score() calls corrcoef", "room.py:9: prep() z-scores",
                     "room.py:10: zscore_train() is a zscore helper", "room.py:12: _folds() is a folds helper",
                     "room.py:13: _folds() splits a permutation", "room.py:16: cv() builds KFold",
                     "room.py:18: rows() builds an id -> row table", "room.py:20: align_rows() is a ids helper",
                     "room.py:25: by_names() hand-written Pearson"]:
        assert expected in found, (expected, found)
    assert "delegate_pearson" not in found
    assert not any(line.startswith("metrics/") for line in found.splitlines())

"""A run's accuracies also in BHscore's own tree, so that its notebook and ``brainlike reproduce`` read them.

For every network given by a BHscore ``dir`` (not a control), beside ``<out>/results/*.parquet``::

    <out>/decoding_accuracy/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat
    <out>/encoding_accuracy/ImageNetTest/<dir>/<layer>/<subject>/<roi>/accuracy.mat

Decoding: ``decoding/feature_decoding_predict.py`` l.70 (root), l.119 (``<network>/<layer>/<subject>/
<roi>``), l.200-202 (``accuracy`` of shape ``(1,) + unit shape``, units in C order), l.229-230 (saved
by bdpy ``save_array`` as float32). Encoding: ``encoding/featenc_fastl2lir_predict.py`` l.188-197 and
l.222-223 write one accuracy per voxel, ``(1, n_voxels)`` float32; the tree is named as in the
published archive that ``calc_bhscore.ipynb`` reads (``data/download_encoding_accuracy.sh``:
``encoding_accuracy/ImageNetTest/...``). Units are in the order of the layer's units: when the
run analysed every unit of a layer the array keeps the layer's unit shape; with a unit subset
(``decoding.units_per_layer``) it is ``(1, n_units analysed)`` in unit order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOTS = {"decoding": "decoding_accuracy/ImageNetTest", "encoding": "encoding_accuracy/ImageNetTest"}

__all__ = ["ROOTS", "write_bhscore_trees", "bhscore_tree_dnns"]


def bhscore_tree_dnns(exp) -> dict[str, str]:
    """{dnn name: BHscore dir} of the networks whose accuracies go to the BHscore tree."""
    out, seen = {}, {}
    for name, d in exp.dnns.items():
        if d.dir and d.control is None:
            if d.dir in seen:
                raise ValueError(f"config key 'dnns': {seen[d.dir]!r} and {name!r} share the BHscore dir {d.dir!r}; "
                                 "their accuracy trees would overwrite each other")
            seen[d.dir] = name
            out[name] = d.dir
    return out


def _layer_dir(name: str) -> str:
    return name.replace("/", ":")  # as BHscore's feature folders (features._bhscore)


def write_bhscore_trees(exp, tables: dict, unit_shapes: dict | None = None, out=None) -> list[Path]:
    """Write the accuracies of ``tables`` (``decoding_accuracy`` / ``encoding_accuracy`` DataFrames of a
    run) in BHscore's trees under ``out`` (default ``exp.out``). ``unit_shapes``:
    ``{dnn: {layer: unit shape}}`` of the layers read from BHscore feature files. Returns the files."""
    from brainlike.datasets.bhscore import write_accuracy_file

    dnns = bhscore_tree_dnns(exp)
    if not dnns:
        return []
    out = Path(exp.out if out is None else out)
    written = []
    for kind, index_col in (("decoding", "unit"), ("encoding", "voxel")):
        table = tables.get(f"{kind}_accuracy")
        if table is None or len(table) == 0:
            continue
        for (dnn, layer, subject, roi), g in table.groupby(["dnn", "layer", "subject", "roi"], observed=True, sort=False):
            if dnn not in dnns:
                continue
            g = g.sort_values(index_col)
            acc = g["accuracy"].to_numpy(dtype=np.float64)
            shape = (1, acc.size)
            if kind == "decoding":
                ushape = (unit_shapes or {}).get(dnn, {}).get(layer)
                units = g["unit"].to_numpy()
                if ushape is not None and int(np.prod(ushape)) == acc.size and np.array_equal(units, np.arange(acc.size)):
                    shape = (1, *(int(s) for s in ushape))
            path = out / ROOTS[kind] / dnns[dnn] / _layer_dir(str(layer)) / str(subject) / str(roi) / "accuracy.mat"
            written.append(write_accuracy_file(path, acc.reshape(shape)))
    return written

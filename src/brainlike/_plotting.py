"""brainlike's one plotting style: object-oriented matplotlib without pyplot.

``fig, ax = subplots(...)`` returns a :class:`matplotlib.figure.Figure` that belongs to no pyplot
state machine and needs no backend, so a library function never switches a notebook's backend
(no ``matplotlib.use`` anywhere in brainlike) and never leaks open figures; :func:`save_png` writes
it atomically. Axes are then drawn on with their own methods (``ax.plot``, ``ax.set_xlabel``, ...).
"""

from __future__ import annotations

from pathlib import Path

from brainlike._io import atomic_write


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, squeeze: bool = True, layout=None, **kwargs):
    """``(fig, axes)`` like ``plt.subplots``, on a standalone Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, **kwargs)


def save_png(fig, path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically; return the path."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"), suffix=".png")

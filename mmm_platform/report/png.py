"""The one place a matplotlib Figure becomes base64 PNG text: the asset pages' inline thumbnails
and the HTML report's embedded images (both must work with no file beside them)."""

from __future__ import annotations

import base64
import io
from typing import Any


def png_base64(fig: Any, dpi: int) -> str:
    """The figure as base64 PNG text at `dpi`; closes the figure (pyplot keeps every open one)."""
    import matplotlib.pyplot as plt  # not at import: the Dagster definitions import this module

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")

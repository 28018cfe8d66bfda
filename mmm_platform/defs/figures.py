"""The one place core results become what an asset page shows: a figure (a matplotlib Figure) as a
small PNG inline in markdown (Dagster has no plot metadata type) with the full-size PNG as a file
under MMM_REPORT_DIR/figures/, linked by path; a table as markdown."""

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from mmm_platform.config import get_settings
from mmm_platform.report.png import png_base64

#: the inline thumbnail's resolution and the saved file's (inches come from the figure)
INLINE_DPI, FILE_DPI = 60, 150


def figure_metadata(fig: Any, asset: str, name: str) -> dict[str, dg.MetadataValue]:
    """{name: inline thumbnail, name_file: path of the full-size PNG}; closes the figure."""
    folder = get_settings().report_dir / "figures" / asset.replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(folder / f"{name}.png")
    fig.savefig(path, format="png", dpi=FILE_DPI, bbox_inches="tight")
    inline = png_base64(fig, INLINE_DPI)
    return {
        name: dg.MetadataValue.md(f"![{name}](data:image/png;base64,{inline})"),
        f"{name}_file": dg.MetadataValue.path(str(path)),
    }


def table_metadata(frame: pd.DataFrame, floatfmt: str = ".3g") -> dg.MetadataValue:
    """A frame as a markdown table on the asset page."""
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=floatfmt))

"""The one place a core figure (a matplotlib Figure) becomes asset metadata: a small PNG inline in
markdown, which the asset page shows (Dagster has no plot metadata type), and the full-size PNG as
a file under MMM_REPORT_DIR/figures/, linked by path."""

from pathlib import Path
from typing import Any

import dagster as dg

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

"""The HTML report a person reads: one self-contained page from the warehouse tables (no Dagster)."""

"""Out-of-sample validation of the models: the backtest harness (no Dagster)."""

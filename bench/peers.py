"""The funnel of bench/funnel.sql in DuckDB or Polars, as CSV on stdout.

    python bench/peers.py duckdb|polars DATA_DIR
"""

import sys
from pathlib import Path


def duckdb_funnel(data: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{data}/events/*/*.parquet', hive_partitioning = true)"
    )
    con.execute(f"CREATE VIEW styles AS SELECT * FROM read_parquet('{data}/styles.parquet')")
    sql = (Path(__file__).parent / "funnel.sql").read_text()
    sys.stdout.flush()
    con.execute(f"COPY ({sql}) TO '/dev/stdout' (HEADER, DELIMITER ',')")


def polars_funnel(data: Path) -> None:
    import polars as pl

    events = pl.scan_parquet(f"{data}/events/*/*.parquet", hive_partitioning=True)
    styles = pl.scan_parquet(f"{data}/styles.parquet").select(
        "style_id", "category", "launch_at", window_end=pl.col("launch_at") + pl.duration(days=21)
    )
    purchase = pl.col("event_type") == "purchase"
    funnel = (
        events.select("style_id", "event_time", "event_type", "user_id", "quantity", "price")
        .join(styles, on="style_id")
        .filter(
            (pl.col("event_time") >= pl.col("launch_at"))
            & (pl.col("event_time") < pl.col("window_end"))
        )
        .group_by("style_id", "category")
        .agg(
            views=(pl.col("event_type") == "view").sum(),
            carts=(pl.col("event_type") == "cart").sum(),
            purchases=purchase.sum(),
            units=pl.when(purchase).then(pl.col("quantity")).otherwise(0).sum(),
            revenue=pl.when(purchase).then(pl.col("quantity") * pl.col("price")).otherwise(0.0).sum(),
            buyers=pl.col("user_id").filter(purchase).n_unique(),
        )
        .sort("style_id")
    )
    funnel.collect(engine="streaming").write_csv(sys.stdout)


if __name__ == "__main__":
    engine, data = sys.argv[1], Path(sys.argv[2]).resolve()
    {"duckdb": duckdb_funnel, "polars": polars_funnel}[engine](data)

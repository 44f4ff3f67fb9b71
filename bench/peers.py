"""A bench query in DuckDB or Polars, its answer as CSV on stdout.

    python bench/peers.py duckdb|polars DATA_DIR [QUERY] [PUBLISHED_RUN]

QUERY is `funnel` (bench/funnel.sql, the default) or a shape of bench/shapes/
(`funnel_where`, `cohort_curves`, ...). DuckDB runs the very SQL text assay runs, over
the same Parquet files; Polars runs the same question in its lazy API with the
streaming engine, as a Polars user would write it. PUBLISHED_RUN is the run id that
assay's `decisions` table serves (for queries that read it).
"""

import sys
from pathlib import Path

BENCH = Path(__file__).parent


def sql_text(query: str) -> str:
    path = BENCH / "funnel.sql" if query == "funnel" else BENCH / "shapes" / f"{query}.sql"
    return path.read_text()


def duckdb_answer(data: Path, query: str, published: str | None) -> None:
    import duckdb

    con = duckdb.connect()
    # Days and dates as assay reads them: in UTC, whatever the machine's zone.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{data}/events/*/*.parquet', hive_partitioning = true)"
    )
    con.execute(f"CREATE VIEW styles AS SELECT * FROM read_parquet('{data}/styles.parquet')")
    con.execute(
        f"CREATE VIEW stock_receipts AS SELECT * FROM read_parquet('{data}/stock_receipts.parquet')"
    )
    if published is not None:
        con.execute(
            f"CREATE VIEW decisions AS SELECT * FROM read_parquet('{data}/decisions/*.parquet') "
            f"WHERE run_id = '{published}'"
        )
    sys.stdout.flush()
    con.execute(f"COPY ({sql_text(query)}) TO '/dev/stdout' (HEADER, DELIMITER ',')")


# --- Polars: each query in the lazy API -------------------------------------------------


def polars_tables(data: Path):
    import polars as pl

    events = pl.scan_parquet(f"{data}/events/*/*.parquet", hive_partitioning=True)
    styles = pl.scan_parquet(f"{data}/styles.parquet")
    return pl, events, styles


def in_window(pl, events, styles, days: int):
    """Events inside their style's first `days` days, with the style's category."""
    window = styles.select(
        "style_id", "category", "launch_at", window_end=pl.col("launch_at") + pl.duration(days=days)
    )
    return events.join(window, on="style_id").filter(
        (pl.col("event_time") >= pl.col("launch_at")) & (pl.col("event_time") < pl.col("window_end"))
    )


def funnel(pl, events, styles, days: int, every_style: bool):
    purchase = pl.col("event_type") == "purchase"
    counts = (
        in_window(pl, events.select("style_id", "event_time", "event_type", "user_id", "quantity", "price"), styles, days)
        .group_by("style_id", "category")
        .agg(
            views=(pl.col("event_type") == "view").sum(),
            carts=(pl.col("event_type") == "cart").sum(),
            purchases=purchase.sum(),
            units=pl.when(purchase).then(pl.col("quantity")).otherwise(0).sum(),
            revenue=pl.when(purchase).then(pl.col("quantity") * pl.col("price")).otherwise(0.0).sum(),
            buyers=pl.col("user_id").filter(purchase).drop_nulls().n_unique(),
        )
    )
    if every_style:
        columns = ["views", "carts", "purchases", "units", "revenue", "buyers"]
        counts = (
            styles.select("style_id", "category")
            .join(counts.drop("category"), on="style_id", how="left")
            .with_columns(pl.col(c).fill_null(0) for c in columns)
        )
    return counts.sort("style_id")


def cohort_curves(pl, events, styles, data: Path):
    sold = (
        in_window(pl, events.filter(pl.col("event_type") == "purchase"), styles, 28)
        .with_columns(age_days=((pl.col("event_time") - pl.col("launch_at")).dt.total_seconds() // 86400).cast(pl.Int32))
        .group_by("category", "age_days")
        .agg(units=pl.col("quantity").sum())
    )
    receipts = pl.scan_parquet(f"{data}/stock_receipts.parquet")
    received = (
        receipts.join(styles.select("style_id", "category"), on="style_id")
        .group_by("category")
        .agg(received=pl.col("units").sum())
    )
    return (
        sold.join(received, on="category")
        .sort("category", "age_days")
        .with_columns(
            sell_through=pl.col("units").cum_sum().over("category") / pl.col("received").cast(pl.Float64)
        )
        .select("category", "age_days", "units", "sell_through")
    )


def top_styles(pl, events, styles):
    return (
        in_window(pl, events.filter(pl.col("event_type") == "purchase"), styles, 14)
        .group_by("category", "style_id")
        .agg(units=pl.col("quantity").sum(), revenue=(pl.col("quantity") * pl.col("price")).sum())
        .sort(["category", "units", "style_id"], descending=[False, True, False])
        .with_columns(rank=pl.int_range(1, pl.len() + 1).over("category"))
        .filter(pl.col("rank") <= 5)
        .select("category", "rank", "style_id", "units", "revenue")
    )


def decisions_report(pl, events, styles, data: Path, published: str):
    kind = pl.col("event_type")
    funnel = events.group_by("style_id").agg(
        views=(kind == "view").sum(),
        purchases=(kind == "purchase").sum(),
        units=pl.col("quantity").filter(kind == "purchase").sum(),
        returned=pl.col("quantity").filter(kind == "return").sum(),
    )
    decisions = (
        pl.scan_parquet(f"{data}/decisions/*.parquet")
        .filter(pl.col("run_id") == published)
        # A decision row holds its own funnel counts: keep only what the report takes.
        .select("style_id", "market", "verdict", "reorder_units", "p_keep")
    )
    return (
        decisions.join(styles.select("style_id", "category", "list_price"), on="style_id")
        .join(funnel, on="style_id")
        .with_columns(market=pl.col("market").fill_null("all"))
        .select(
            "style_id", "market", "category", "list_price", "verdict", "reorder_units", "p_keep",
            "views", "purchases", "units", "returned",
        )
        .sort("style_id", "market")
    )


def market_scan(pl, events):
    from datetime import datetime, timezone

    start = datetime(2026, 10, 1, tzinfo=timezone.utc)
    end = datetime(2026, 10, 15, tzinfo=timezone.utc)
    return (
        events.filter(
            (pl.col("market") == "DE") & (pl.col("event_time") >= start) & (pl.col("event_time") < end)
        )
        .group_by(day=pl.col("event_time").dt.date(), event_type=pl.col("event_type"))
        .agg(events=pl.len(), units=pl.col("quantity").sum())
        .sort("day", "event_type")
    )


def polars_answer(data: Path, query: str, published: str | None) -> None:
    pl, events, styles = polars_tables(data)
    plans = {
        "funnel": lambda: funnel(pl, events, styles, 21, every_style=False),
        "funnel_where": lambda: funnel(pl, events, styles, 14, every_style=False),
        "funnel_on": lambda: funnel(pl, events, styles, 14, every_style=False),
        "funnel_cte": lambda: funnel(pl, events, styles, 14, every_style=True),
        "cohort_curves": lambda: cohort_curves(pl, events, styles, data),
        "top_styles": lambda: top_styles(pl, events, styles),
        "decisions_report": lambda: decisions_report(pl, events, styles, data, published),
        "market_scan": lambda: market_scan(pl, events),
    }
    plans[query]().collect(engine="streaming").write_csv(sys.stdout)


if __name__ == "__main__":
    engine, data = sys.argv[1], Path(sys.argv[2]).resolve()
    query = sys.argv[3] if len(sys.argv) > 3 else "funnel"
    published = sys.argv[4] if len(sys.argv) > 4 else None
    {"duckdb": duckdb_answer, "polars": polars_answer}[engine](data, query, published)

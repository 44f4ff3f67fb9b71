//! The daily rollup `style_daily`, maintained incrementally.
//!
//! Each refresh recomputes only the days from the earliest change on (stock carries
//! from day to day, so a late event also moves the days after it) and links the
//! unchanged days' files into a new generation. A generation is a folder of
//! `day=YYYY-MM-DD/part.parquet` files that nothing reads until `rollup/CURRENT` (one
//! small object, replaced whole) names it; readers see one whole generation or the
//! previous one. That needs no folder rename, so it is the same on an object store. A refresh is triggered by changed event files, a changed catalog
//! launch or changed receipts, found by comparing against what the last generation
//! was built from, so it works whoever wrote the events.

mod state;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, Date32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{Days, NaiveDate};
use datafusion::datasource::MemTable;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::ListingOptions;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use serde::Serialize;

pub use state::{EventListing, FileStamp, RollupState, first_changed_day, is_listed, list_events};

use crate::error::{EngineError, Result};
use crate::parquet_io::rollup_writer_properties;
use crate::progress::Progress;
use crate::source::{self, Dataset};
use crate::sql::{style_daily_days, style_daily_schema};
use crate::storage::{self, Storage};

/// The rollup's table name in the session.
pub const TABLE: &str = "style_daily";

/// The schema of a rollup file: the day lives in the folder name.
fn file_schema() -> SchemaRef {
    let full = style_daily_schema();
    let fields: Vec<Field> = full
        .fields()
        .iter()
        .filter(|f| f.name() != "day")
        .map(|f| f.as_ref().clone())
        .collect();
    Arc::new(Schema::new(fields))
}

/// What a refresh did.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    pub generation: u64,
    pub rebuilt: bool,
    /// The first recomputed day; `None` when nothing had changed.
    pub from: Option<NaiveDate>,
    pub through: NaiveDate,
    pub days_written: usize,
    pub rows_written: usize,
    pub seconds: f64,
}

/// The rollup's folder in the dataset.
const DIR: &str = "rollup";
const CURRENT: &str = "rollup/CURRENT";
/// How long a refresh waits for another process's refresh of the same dataset.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// The rollup of one dataset, under `DATA/rollup/`.
#[derive(Debug, Clone)]
pub struct Rollup {
    storage: Storage,
}

impl Rollup {
    pub fn new(dataset: &Dataset) -> Self {
        Self {
            storage: dataset.storage.clone(),
        }
    }

    fn generation_dir(generation: u64) -> String {
        format!("{DIR}/gen-{generation:06}")
    }

    /// Copies of the catalog and receipts a generation was built from.
    fn inputs_dir(generation: u64) -> String {
        format!("{DIR}/inputs-{generation:06}")
    }

    /// The published state, if a rollup has been built.
    ///
    /// # Errors
    /// `CURRENT` exists but cannot be read or parsed.
    pub fn state(&self) -> Result<Option<RollupState>> {
        let Some(text) = self.storage.read_opt(CURRENT)? else {
            return Ok(None);
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| EngineError::Store {
                path: self.storage.display(CURRENT),
                message: format!("rollup state is not valid JSON: {e}"),
            })
    }

    /// Registers the published generation as `style_daily` in `ctx` (no rows when none
    /// has been built, or when its rows are of an older layout).
    ///
    /// # Errors
    /// The state cannot be read or the table cannot be registered.
    pub async fn register(&self, ctx: &SessionContext) -> Result<Option<RollupState>> {
        let state = self.state()?;
        ctx.deregister_table(TABLE)?;
        match &state {
            Some(s) if s.is_current() => {
                self.register_dir(ctx, &Self::generation_dir(s.generation))
                    .await?
            }
            _ => register_empty(ctx)?,
        }
        Ok(state)
    }

    /// Replaces the registered `style_daily` of `ctx` with its rows held in memory,
    /// when its files are small (see `IN_MEMORY_BYTES`). A decision run's funnel reads
    /// the rollup in several of its parts, and DataFusion scans a table once per
    /// reference: every scan opened and decoded every day file again.
    ///
    /// # Errors
    /// The rows cannot be read.
    pub async fn hold_in_memory(&self, ctx: &SessionContext) -> Result<()> {
        let Some(state) = self.state()?.filter(RollupState::is_current) else {
            return Ok(());
        };
        let bytes: u64 = self
            .storage
            .list(&Self::generation_dir(state.generation))?
            .iter()
            .map(|e| e.size)
            .sum();
        if bytes > IN_MEMORY_BYTES {
            return Ok(());
        }
        let table = ctx.table(TABLE).await?;
        let schema = Arc::clone(table.schema().inner());
        let partitions = table.collect_partitioned().await?;
        ctx.deregister_table(TABLE)?;
        ctx.register_table(TABLE, Arc::new(MemTable::try_new(schema, partitions)?))?;
        Ok(())
    }

    /// Brings the rollup up to date with `events/`, the catalog and the receipts, and
    /// registers it in `ctx`. Recomputes everything when `rebuild` is set, when none
    /// exists, or when its rows are of an older layout. No policy plays a part: every
    /// policy's funnel reads the same rows.
    ///
    /// Refreshes of one dataset are serialised by a lock, across processes.
    ///
    /// # Errors
    /// I/O, a query failure, or an unreadable state.
    pub async fn refresh(
        &self,
        ctx: &SessionContext,
        data: &Dataset,
        rebuild: bool,
        progress: &Progress,
    ) -> Result<RefreshReport> {
        let started = Instant::now();
        // Another process refreshing (an `assay ingest`) is waited for without holding
        // a runtime thread, and for a bounded time: then a conflict naming it.
        let _lock = self
            .storage
            .lock_within(&storage::join(DIR, ".lock"), LOCK_PATIENCE)
            .await?;

        let previous = self.register(ctx).await?;
        let listing = list_events(&data.storage)?;
        let Some(through) = listing.keys().next_back().copied() else {
            return Err(EngineError::NoEvents {
                path: data.storage.display(source::EVENTS),
            });
        };
        let reusable = previous.as_ref().filter(|p| !rebuild && p.is_current());
        let from = match reusable {
            Some(prev) => {
                let events = first_changed_day(&prev.events, &listing);
                let inputs = self.first_changed_input_day(ctx, prev.generation).await?;
                [events, inputs].into_iter().flatten().min()
            }
            None => Some(first_day(ctx, &listing).await?),
        };
        let generation = previous.as_ref().map_or(0, |p| p.generation) + 1;
        let Some(from) = from.filter(|d| *d <= through) else {
            return Ok(RefreshReport {
                generation: generation - 1,
                rebuilt: false,
                from: None,
                through: previous.map_or(through, |p| p.through),
                days_written: 0,
                rows_written: 0,
                seconds: started.elapsed().as_secs_f64(),
            });
        };
        if reusable.is_none() {
            // The opening stock of a rebuild comes from receipts alone.
            ctx.deregister_table(TABLE)?;
            register_empty(ctx)?;
        }

        // Unpublished until CURRENT names it; what a crashed refresh left there goes.
        let dir = Self::generation_dir(generation);
        self.storage.delete_all(&dir)?;
        if let Some(prev) = reusable {
            self.link_days_before(&Self::generation_dir(prev.generation), &dir, from)?;
        }
        let until = through + Days::new(1);
        let bar = progress.bar(
            (until - from).num_days().max(0) as u64,
            "days of the daily rollup",
        );
        let (mut days_written, mut rows_written) = (0, 0);
        let mut chunk_from = from;
        while chunk_from < until {
            // A week at a time: memory follows a week's events, not the whole history
            // (the query's hash joins cannot spill).
            let chunk_until = (chunk_from + Days::new(CHUNK_DAYS)).min(until);
            let sql = style_daily_days(chunk_from, chunk_until);
            let (days, rows) = write_days(ctx, &sql, &self.storage, &dir).await?;
            days_written += days;
            rows_written += rows;
            if days > 0 {
                // The next week carries its stock in from the rows just written.
                ctx.deregister_table(TABLE)?;
                self.register_dir(ctx, &dir).await?;
            }
            bar.inc((chunk_until - chunk_from).num_days() as u64);
            chunk_from = chunk_until;
        }
        bar.finish_and_clear();
        let inputs = Self::inputs_dir(generation);
        for name in [source::STYLES, source::RECEIPTS] {
            self.storage.copy(name, &storage::join(&inputs, name))?;
        }

        let state = RollupState {
            generation,
            layout: RollupState::LAYOUT,
            through,
            events: listing,
        };
        let text = serde_json::to_vec_pretty(&state).expect("state serialises");
        // The commit point.
        self.storage.write(CURRENT, text.into())?;
        self.register(ctx).await?;
        self.remove_old_generations(generation);
        Ok(RefreshReport {
            generation,
            rebuilt: reusable.is_none(),
            from: Some(from),
            through,
            days_written,
            rows_written,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The earliest day a change of the catalog's launches or of the receipts affects.
    async fn first_changed_input_day(
        &self,
        ctx: &SessionContext,
        generation: u64,
    ) -> Result<Option<NaiveDate>> {
        let inputs = Self::inputs_dir(generation);
        // The copies are byte for byte what they were copied from, so files that still
        // read the same changed nothing, and the diff below (a tenth of a daily run's
        // time) is not needed.
        let mut unchanged = true;
        for name in [source::STYLES, source::RECEIPTS] {
            let copy = storage::join(&inputs, name);
            unchanged = unchanged
                && self.storage.exists(&copy)?
                && self.storage.read(name)? == self.storage.read(&copy)?;
        }
        if unchanged {
            return Ok(None);
        }
        let scratch = SessionContext::new_with_config_rt(
            SessionConfig::new(),
            crate::compute::runtime_env(&self.storage.s3_settings())?,
        );
        for (name, table) in [
            ("styles", "prev_styles"),
            ("stock_receipts", "prev_receipts"),
        ] {
            let key = storage::join(&inputs, &format!("{name}.parquet"));
            if !self.storage.exists(&key)? {
                // Built without a copy: treat every day as changed.
                return Ok(Some(NaiveDate::MIN));
            }
            scratch
                .register_parquet(
                    table,
                    self.storage.file_url(&key)?,
                    ParquetReadOptions::default(),
                )
                .await?;
            let current = ctx.table(name).await?;
            let schema = Arc::clone(current.schema().inner());
            let rows = current.collect().await?;
            scratch.register_table(name, Arc::new(MemTable::try_new(schema, vec![rows])?))?;
        }
        let sql = "SELECT CAST(MIN(d) AS DATE) AS d FROM (
            SELECT launch_at AS d FROM (SELECT style_id, launch_at FROM styles
                EXCEPT SELECT style_id, launch_at FROM prev_styles) a
            UNION ALL
            SELECT launch_at FROM (SELECT style_id, launch_at FROM prev_styles
                EXCEPT SELECT style_id, launch_at FROM styles) b
            UNION ALL
            SELECT received_at FROM (SELECT style_id, market, received_at, units FROM stock_receipts
                EXCEPT SELECT style_id, market, received_at, units FROM prev_receipts) c
            UNION ALL
            SELECT received_at FROM (SELECT style_id, market, received_at, units FROM prev_receipts
                EXCEPT SELECT style_id, market, received_at, units FROM stock_receipts) e
        ) changes";
        first_date(&scratch.sql(sql).await?.collect().await?)
    }

    /// Keeps the two newest generations: a reader may still be scanning the previous.
    fn remove_old_generations(&self, newest: u64) {
        for generation in 1..newest.saturating_sub(1) {
            for dir in [
                Self::generation_dir(generation),
                Self::inputs_dir(generation),
            ] {
                if let Err(e) = self.storage.delete_all(&dir) {
                    tracing::warn!(path = %self.storage.display(&dir), error = %e,
                        "could not remove an old rollup generation");
                }
            }
        }
    }

    async fn register_dir(&self, ctx: &SessionContext, dir: &str) -> Result<()> {
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![("day".to_string(), DataType::Date32)]);
        ctx.register_listing_table(
            TABLE,
            self.storage.table_url(dir)?,
            options,
            Some(file_schema()),
            None,
        )
        .await?;
        Ok(())
    }

    /// Links the day files before `from` of one generation into another.
    fn link_days_before(&self, old: &str, new: &str, from: NaiveDate) -> Result<()> {
        for entry in self.storage.list(old)? {
            let relative = entry.under(old);
            let day = relative
                .split('/')
                .next()
                .and_then(|d| d.strip_prefix("day="))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            if day.is_some_and(|d| d < from) {
                self.storage
                    .link(&entry.key, &storage::join(new, relative))?;
            }
        }
        Ok(())
    }
}

/// The first day a rebuild covers: the first event day, or an earlier receipt's day.
async fn first_day(ctx: &SessionContext, listing: &EventListing) -> Result<NaiveDate> {
    let first_event = *listing.keys().next().expect("listing is not empty");
    let batches = ctx
        .sql("SELECT CAST(MIN(received_at) AS DATE) AS d FROM stock_receipts")
        .await?
        .collect()
        .await?;
    Ok(first_date(&batches)?.map_or(first_event, |d| d.min(first_event)))
}

fn first_date(batches: &[RecordBatch]) -> Result<Option<NaiveDate>> {
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let days = batch
        .column(0)
        .as_any()
        .downcast_ref::<Date32Array>()
        .ok_or_else(|| EngineError::Column {
            query: "rollup change detection",
            column: "d".into(),
            message: "expected a date".into(),
        })?;
    Ok(days.is_valid(0).then(|| days.value_as_date(0)).flatten())
}

/// An `EmptyTable` rather than a `MemTable`: Ballista can ship it to its executors.
fn register_empty(ctx: &SessionContext) -> Result<()> {
    ctx.register_table(TABLE, Arc::new(EmptyTable::new(style_daily_schema())))?;
    Ok(())
}

/// The largest rollup (its Parquet files) [`Rollup::hold_in_memory`] takes in: a
/// few hundred MiB in memory.
const IN_MEMORY_BYTES: u64 = 64 << 20;

/// Days recomputed by one query of a refresh.
const CHUNK_DAYS: u64 = 7;

/// Runs the rollup query and writes one file per day under `dir`.
async fn write_days(
    ctx: &SessionContext,
    sql: &str,
    storage: &Storage,
    dir: &str,
) -> Result<(usize, usize)> {
    let mut stream = ctx.sql(sql).await?.execute_stream().await?;
    let schema = style_daily_schema();
    let day_index = schema.index_of("day").expect("day column");
    let mut current: Option<(NaiveDate, ArrowWriter<Vec<u8>>)> = None;
    // A day's file is small (a row per style and market), so it is built in memory.
    let finish = |(day, writer): (NaiveDate, ArrowWriter<Vec<u8>>)| -> Result<()> {
        let key = format!("{dir}/day={day}/part.parquet");
        storage.write(&key, writer.into_inner()?.into())
    };
    let (mut days, mut rows) = (0, 0);
    while let Some(batch) = stream.next().await {
        // The query's strings come as views (the events table reads them so); the
        // files keep the rollup's own types.
        let columns = batch?
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        let day_col = batch
            .column(day_index)
            .as_any()
            .downcast_ref::<Date32Array>()
            .expect("day is a date");
        let mut start = 0;
        while start < batch.num_rows() {
            let day = day_col.value_as_date(start).expect("valid date");
            let mut end = start + 1;
            while end < batch.num_rows() && day_col.value_as_date(end) == Some(day) {
                end += 1;
            }
            if current.as_ref().is_none_or(|(d, _)| *d != day) {
                if let Some(done) = current.take() {
                    finish(done)?;
                }
                let writer = ArrowWriter::try_new(
                    Vec::new(),
                    file_schema(),
                    Some(rollup_writer_properties()),
                )?;
                current = Some((day, writer));
                days += 1;
            }
            let slice = batch.slice(start, end - start);
            let mut columns = slice.columns().to_vec();
            columns.remove(day_index);
            let part = RecordBatch::try_new(file_schema(), columns)?;
            if let Some((_, writer)) = current.as_mut() {
                writer.write(&part)?;
            }
            rows += end - start;
            start = end;
        }
    }
    if let Some(done) = current.take() {
        finish(done)?;
    }
    Ok((days, rows))
}

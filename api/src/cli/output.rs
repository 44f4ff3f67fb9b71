//! Printing query results as a table, CSV (safe to open in a spreadsheet) or JSON lines.

use std::io::Write;

use arrow::record_batch::RecordBatch;

use crate::spreadsheet::defuse_batch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub fn print_batches(batches: &[RecordBatch], format: Format) -> anyhow::Result<()> {
    let mut out = Watched {
        inner: std::io::stdout().lock(),
        closed: false,
    };
    let printed = write_batches(&mut out, batches, format);
    if out.closed {
        // The csv writer keeps only the text of an I/O error: say it the typed way, so
        // the caller can tell a closed pipe from a failure.
        return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe).into());
    }
    printed
}

/// A writer that remembers whether its reader went away.
struct Watched<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.note(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|e| self.note(e))
    }
}

impl<W> Watched<W> {
    fn note(&mut self, error: &std::io::Error) {
        self.closed |= error.kind() == std::io::ErrorKind::BrokenPipe;
    }
}

fn write_batches(
    mut out: impl Write,
    batches: &[RecordBatch],
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Table => writeln!(
            out,
            "{}",
            arrow::util::pretty::pretty_format_batches(batches)?
        )?,
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in batches {
                writer.write(&defuse_batch(b)?)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    Ok(())
}

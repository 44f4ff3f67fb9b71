//! Analysts' SQL over HTTP: one read-only query, answered as a stream of JSON rows,
//! CSV or Arrow IPC.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use assay_engine::sandbox::Answer;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Json};

use crate::auth::{Permission, Principal};
use crate::server::dto::SqlBody;
use crate::server::error::{ApiError, Problem};
use crate::server::state::AppState;
use crate::spreadsheet::defuse_batch;

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[utoipa::path(
    post,
    path = "/v1/sql",
    tag = "sql",
    request_body = SqlBody,
    responses(
        (status = 200, description = "The answer, streamed. JSON (default): `{\"columns\": [{\"name\", \"type\"}], \"rows\": [{…}], \"row_count\", \"truncated\"}`, with `error` if the query failed midway; `Accept: text/csv`: CSV with a header; `Accept: application/vnd.apache.arrow.stream`: an Arrow IPC stream. At most the server's row limit (header `x-assay-row-limit`).",
            content(
                (Object = "application/json"),
                (String = "text/csv"),
                (Vec<u8> = "application/vnd.apache.arrow.stream"),
            )),
        (status = 400, description = "The body is not valid JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not read-only (DDL, DML, COPY, SET, file paths), or the role may not run SQL", body = Problem, content_type = "application/problem+json"),
        (status = 406, description = "An answer format assay cannot give", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "SQL text too long", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body; SQL that is not valid or does not plan against assay's tables; or the query ran past its memory or time limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many analyst queries running, on the server or for this token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn post_sql(
    State(state): State<Arc<AppState>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Json<SqlBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    principal.require(Permission::Sql)?;
    let Json(body) = body?;
    let format = Format::negotiate(&headers)?;
    let mut answer = state.sandbox.run(&principal.name, body.sql).await?;
    // Wait for the first rows (or the end) before answering: a blocking query (an
    // aggregation, a sort) fails on memory or time before then, with its own status.
    let first = answer.next().await.transpose()?;
    let schema = Arc::clone(&answer.schema);
    let max_rows = state.sandbox.limits().max_rows;
    let encoder = Encoder::new(format, &schema).map_err(|e| ApiError::internal(&e))?;
    let stream = futures::stream::unfold(
        Streaming {
            answer: Some(answer),
            pending: first,
            encoder,
            rows: 0,
            max_rows,
            started: false,
            schema,
        },
        next_chunk,
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header("x-assay-row-limit", max_rows.to_string())
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(&e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

impl Format {
    fn negotiate(headers: &HeaderMap) -> Result<Self, ApiError> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("*/*");
        for kind in accept
            .split(',')
            .map(|k| k.split(';').next().unwrap_or("").trim())
        {
            match kind {
                "application/json" | "*/*" | "application/*" | "" => return Ok(Self::Json),
                "text/csv" | "text/*" => return Ok(Self::Csv),
                ARROW_STREAM => return Ok(Self::Arrow),
                _ => {}
            }
        }
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "cannot answer as `{accept}`: ask for application/json, text/csv or {ARROW_STREAM}"
            ),
        ))
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => ARROW_STREAM,
        }
    }
}

/// Turns batches into the bytes of one format.
enum Encoder {
    Json,
    Csv { header: bool },
    Arrow(Box<arrow::ipc::writer::StreamWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(format: Format, schema: &SchemaRef) -> Result<Self, arrow::error::ArrowError> {
        Ok(match format {
            Format::Json => Self::Json,
            Format::Csv => Self::Csv { header: true },
            Format::Arrow => Self::Arrow(Box::new(arrow::ipc::writer::StreamWriter::try_new(
                Vec::new(),
                schema,
            )?)),
        })
    }

    fn begin(&mut self, schema: &SchemaRef) -> Vec<u8> {
        match self {
            Self::Json => {
                let columns: Vec<serde_json::Value> = schema
                    .fields()
                    .iter()
                    .map(|f| serde_json::json!({"name": f.name(), "type": f.data_type().to_string()}))
                    .collect();
                format!(
                    "{{\"columns\":{},\"rows\":[",
                    serde_json::Value::from(columns)
                )
                .into_bytes()
            }
            Self::Csv { .. } => Vec::new(),
            // The schema message was written when the writer was made.
            Self::Arrow(writer) => std::mem::take(writer.get_mut()),
        }
    }

    fn batch(
        &mut self,
        batch: &RecordBatch,
        first_rows: bool,
    ) -> Result<Vec<u8>, arrow::error::ArrowError> {
        match self {
            Self::Json => {
                let mut writer = arrow::json::ArrayWriter::new(Vec::new());
                writer.write(batch)?;
                writer.finish()?;
                let text = writer.into_inner();
                // `[{…},{…}]` → `{…},{…}`, joined to what came before.
                let inner = &text[1..text.len().saturating_sub(1).max(1)];
                let mut out = Vec::with_capacity(inner.len() + 1);
                if !first_rows && !inner.is_empty() {
                    out.push(b',');
                }
                out.extend_from_slice(inner);
                Ok(out)
            }
            Self::Csv { header } => {
                let mut out = Vec::new();
                {
                    let mut writer = arrow::csv::WriterBuilder::new()
                        .with_header(*header)
                        .build(&mut out);
                    writer.write(&defuse_batch(batch)?)?;
                }
                *header = false;
                Ok(out)
            }
            Self::Arrow(writer) => {
                writer.write(batch)?;
                Ok(std::mem::take(writer.get_mut()))
            }
        }
    }

    fn end(
        &mut self,
        rows: usize,
        truncated: bool,
        error: Option<&str>,
    ) -> Result<Vec<u8>, arrow::error::ArrowError> {
        match self {
            Self::Json => {
                let mut tail = serde_json::json!({"row_count": rows, "truncated": truncated});
                if let Some(e) = error {
                    tail["error"] = e.into();
                }
                let tail = tail.to_string();
                Ok(format!("],{}", &tail[1..]).into_bytes())
            }
            Self::Csv { .. } => Ok(Vec::new()),
            Self::Arrow(writer) => {
                writer.finish()?;
                Ok(std::mem::take(writer.get_mut()))
            }
        }
    }
}

struct Streaming {
    answer: Option<Answer>,
    /// Rows received before the answer began.
    pending: Option<RecordBatch>,
    encoder: Encoder,
    rows: usize,
    max_rows: usize,
    started: bool,
    schema: SchemaRef,
}

/// The next piece of the body: the opening, each batch (cut at the row limit), and the
/// close; an error midway closes a JSON answer with `error` and aborts the others.
async fn next_chunk(mut s: Streaming) -> Option<(Result<Bytes, std::io::Error>, Streaming)> {
    if !s.started {
        s.started = true;
        let opening = s.encoder.begin(&s.schema);
        return Some((Ok(Bytes::from(opening)), s));
    }
    let message = match s.pending.take() {
        Some(batch) => Some(Ok(batch)),
        None => s.answer.as_mut()?.next().await,
    };
    let io = |e: arrow::error::ArrowError| std::io::Error::other(e.to_string());
    match message {
        Some(Ok(batch)) => {
            let room = s.max_rows - s.rows;
            let batch = if batch.num_rows() > room {
                batch.slice(0, room)
            } else {
                batch
            };
            let first = s.rows == 0;
            s.rows += batch.num_rows();
            let mut chunk = match s.encoder.batch(&batch, first) {
                Ok(c) => c,
                Err(e) => return Some((Err(io(e)), s)),
            };
            if s.rows >= s.max_rows {
                // Dropping the answer stops the query.
                s.answer = None;
                match s.encoder.end(s.rows, true, None) {
                    Ok(end) => chunk.extend(end),
                    Err(e) => return Some((Err(io(e)), s)),
                }
            }
            Some((Ok(Bytes::from(chunk)), s))
        }
        Some(Err(e)) => {
            s.answer = None;
            match s.encoder {
                Encoder::Json => {
                    let end = s.encoder.end(s.rows, false, Some(&e.to_string())).ok()?;
                    Some((Ok(Bytes::from(end)), s))
                }
                _ => Some((Err(std::io::Error::other(e.to_string())), s)),
            }
        }
        None => {
            s.answer = None;
            match s.encoder.end(s.rows, false, None) {
                Ok(end) => Some((Ok(Bytes::from(end)), s)),
                Err(e) => Some((Err(io(e)), s)),
            }
        }
    }
}

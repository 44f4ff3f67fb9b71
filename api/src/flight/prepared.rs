//! Flight SQL prepared statements, kept by the client: the handle holds the statement's
//! SQL, the schema of its answer and, once bound, its parameters (Arrow IPC), so the
//! server keeps nothing between calls and a handle outlives a restart. Binding returns
//! a new handle (`DoPutPreparedStatementResult`), as Flight SQL 15 lets a server do.
//! The schema rides along so that announcing the answer (`GetFlightInfo`) does not plan
//! the statement again: a reused statement is planned once per execution, to run.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;

/// A prepared statement's handle.
#[derive(Debug, Clone, PartialEq)]
pub struct Handle {
    pub sql: String,
    /// The answer's schema, as planned when the statement was prepared.
    pub schema: SchemaRef,
    /// One row of parameters, once bound.
    pub params: Option<RecordBatch>,
}

/// Marks handles of this server's format.
const MAGIC: &[u8] = b"assay-ps2";

impl Handle {
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + self.sql.len());
        out.extend_from_slice(MAGIC);
        put_section(&mut out, self.sql.as_bytes())?;
        let mut schema = Vec::new();
        StreamWriter::try_new(&mut schema, &self.schema)
            .and_then(|mut w| w.finish())
            .map_err(|e| e.to_string())?;
        put_section(&mut out, &schema)?;
        if let Some(params) = &self.params {
            let mut writer =
                StreamWriter::try_new(&mut out, &params.schema()).map_err(|e| e.to_string())?;
            writer.write(params).map_err(|e| e.to_string())?;
            writer.finish().map_err(|e| e.to_string())?;
        }
        Ok(out)
    }

    /// # Errors
    /// Bytes that are not a handle this server made, said so.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let not_ours = || "the prepared statement handle is not one this server made".to_string();
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(not_ours)?;
        let (sql, rest) = take_section(rest).ok_or_else(not_ours)?;
        let sql = String::from_utf8(sql.to_vec()).map_err(|_| not_ours())?;
        let (schema, ipc) = take_section(rest).ok_or_else(not_ours)?;
        let schema = StreamReader::try_new(schema, None)
            .map_err(|_| not_ours())?
            .schema();
        let params = if ipc.is_empty() {
            None
        } else {
            let mut reader = StreamReader::try_new(ipc, None).map_err(|_| not_ours())?;
            Some(
                reader
                    .next()
                    .ok_or_else(not_ours)?
                    .map_err(|_| not_ours())?,
            )
        };
        Ok(Self {
            sql,
            schema,
            params,
        })
    }

    /// The bound values, in placeholder order (none when unbound).
    ///
    /// # Errors
    /// More than one row of parameters (one query runs per row; send one at a time).
    pub fn values(&self) -> Result<Vec<ScalarValue>, String> {
        let Some(params) = &self.params else {
            return Ok(Vec::new());
        };
        if params.num_rows() != 1 {
            return Err(format!(
                "bind one row of parameters per query ({} were sent)",
                params.num_rows()
            ));
        }
        params
            .columns()
            .iter()
            .map(|column| ScalarValue::try_from_array(column, 0).map_err(|e| e.to_string()))
            .collect()
    }
}

/// Appends `bytes` after their length (4 bytes, big-endian).
fn put_section(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let len = u32::try_from(bytes.len()).map_err(|_| "the statement is too long")?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A section [`put_section`] wrote, and what follows it.
fn take_section(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_handle_round_trips_with_and_without_parameters_and_refuses_strangers() {
        let bare = Handle {
            sql: "SELECT 1 WHERE ? > 0".into(),
            schema: Arc::new(Schema::new(vec![Field::new(
                "Int64(1)",
                DataType::Int64,
                false,
            )])),
            params: None,
        };
        assert_eq!(Handle::decode(&bare.encode().unwrap()).unwrap(), bare);
        let schema = Arc::new(Schema::new(vec![
            Field::new("0", DataType::Float64, true),
            Field::new("1", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![0.9])),
                Arc::new(StringArray::from(vec!["US"])),
            ],
        )
        .unwrap();
        let bound = Handle {
            params: Some(batch),
            ..bare
        };
        let decoded = Handle::decode(&bound.encode().unwrap()).unwrap();
        assert_eq!(decoded, bound);
        assert_eq!(
            decoded.values().unwrap(),
            [
                ScalarValue::Float64(Some(0.9)),
                ScalarValue::Utf8(Some("US".into()))
            ]
        );
        for stranger in [
            &b"SELECT 1"[..],
            b"assay-ps2\0\0\0\x09SELECT 1",
            b"assay-ps1",
        ] {
            assert!(
                Handle::decode(stranger)
                    .unwrap_err()
                    .contains("not one this server made"),
                "{stranger:?}"
            );
        }
    }
}

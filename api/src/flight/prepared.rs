//! Flight SQL prepared statements, kept by the client: the handle holds the statement's
//! SQL and, once bound, its parameters (Arrow IPC), so the server keeps nothing between
//! calls and a handle outlives a restart. Binding returns a new handle
//! (`DoPutPreparedStatementResult`), as Flight SQL 15 lets a server do.

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;

/// A prepared statement's handle.
#[derive(Debug, Clone, PartialEq)]
pub struct Handle {
    pub sql: String,
    /// One row of parameters, once bound.
    pub params: Option<RecordBatch>,
}

/// Marks handles of this server's format.
const MAGIC: &[u8] = b"assay-ps1";

impl Handle {
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let sql = self.sql.as_bytes();
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + sql.len());
        out.extend_from_slice(MAGIC);
        let len = u32::try_from(sql.len()).map_err(|_| "the statement is too long")?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(sql);
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
        let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(not_ours)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(not_ours());
        }
        let (sql, ipc) = rest.split_at(len);
        let sql = String::from_utf8(sql.to_vec()).map_err(|_| not_ours())?;
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
        Ok(Self { sql, params })
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
        assert!(
            Handle::decode(b"SELECT 1")
                .unwrap_err()
                .contains("not one this server made")
        );
    }
}

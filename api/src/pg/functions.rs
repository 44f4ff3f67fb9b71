//! What PostgreSQL clients ask before they query: who the server is, its settings, and
//! the catalog functions their inspectors call.
//!
//! Drivers and BI tools read the server's version before anything else and parse it as
//! PostgreSQL's: SQLAlchemy's dialect matches `PostgreSQL <major>.<minor>` in
//! `version()` and stops the connection when it cannot; pgjdbc and psql read
//! `server_version`. assay speaks PostgreSQL 16's protocol (pgwire announces 16.6 at
//! startup), so it answers as a PostgreSQL 16.6 that names itself inside the
//! parentheses where a distribution would. The catalog functions datafusion-pg-catalog
//! 0.19 lacks are registered here (as UDFs, answering for assay's tables: no sequences,
//! one collation) rather than patched upstream.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;

/// The PostgreSQL release whose protocol and catalog assay answers as.
const PG_VERSION: &str = "16.6";
const PG_VERSION_NUM: &str = "160006";

/// `SHOW server_version`: PostgreSQL's number, then who is really answering.
pub fn server_version() -> String {
    format!(
        "{PG_VERSION} (assay {}, Apache DataFusion {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

/// `SELECT version()`, in PostgreSQL's form.
fn version() -> String {
    format!(
        "PostgreSQL {} on {}-{}, 64-bit",
        server_version(),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// A server-wide setting a client may read with `SHOW`, which assay answers itself.
pub fn server_setting(name: &str) -> Option<String> {
    let value = match name.to_ascii_lowercase().as_str() {
        "server_version" => return Some(server_version()),
        "server_version_num" => PG_VERSION_NUM,
        "standard_conforming_strings" | "integer_datetimes" => "on",
        "server_encoding" => "UTF8",
        "max_identifier_length" => "63",
        "is_superuser" => "off",
        "default_transaction_read_only" => "on",
        _ => return None,
    };
    Some(value.to_owned())
}

/// `current_setting(name)`: a server-wide setting, or a connection's as it starts (a
/// function does not see the connection's own `SET`; `SHOW` does).
fn setting(name: &str) -> Option<String> {
    server_setting(name).or_else(|| {
        let value = match name.to_ascii_lowercase().as_str() {
            "client_encoding" => "UTF8",
            "datestyle" => "ISO, MDY",
            "timezone" => "UTC",
            "search_path" => "public",
            "transaction_isolation" | "default_transaction_isolation" => "read committed",
            "transaction_read_only" => "on",
            _ => return None,
        };
        Some(value.to_owned())
    })
}

/// `to_regtype(name)`: the oid of a built-in type by any of its names, NULL for a type
/// that does not exist here (drivers probe for extension types such as `hstore`, and
/// need the NULL, not an error). The oids are PostgreSQL's, as in `pg_type`.
fn type_oid(name: &str) -> Option<i32> {
    let oid = match name.trim().to_ascii_lowercase().as_str() {
        "bool" | "boolean" => 16,
        "bytea" => 17,
        "int8" | "bigint" => 20,
        "int2" | "smallint" => 21,
        "int4" | "int" | "integer" => 23,
        "text" => 25,
        "oid" => 26,
        "float4" | "real" => 700,
        "float8" | "double precision" => 701,
        "varchar" | "character varying" => 1043,
        "date" => 1082,
        "time" | "time without time zone" => 1083,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" | "decimal" => 1700,
        _ => return None,
    };
    Some(oid)
}

/// Registers `version()`, `current_setting(name)` and the catalog functions
/// SQLAlchemy's inspector calls (`to_regtype`, `json_build_object`,
/// `pg_get_serial_sequence`, `pg_collation_is_visible`) on the shared session, with
/// pg_catalog: once the PostgreSQL port is on, HTTP and Flight SQL answer alike.
pub fn register_functions(ctx: &SessionContext) {
    let version = version();
    ctx.register_udf(create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    ));
    ctx.register_udf(create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|args| match &args[0] {
            ColumnarValue::Scalar(ScalarValue::Utf8(name)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Int32(name.as_deref().and_then(type_oid)),
            )),
            ColumnarValue::Array(names) => {
                let names = names
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| DataFusionError::Internal("to_regtype: not text".into()))?;
                let oids: Int32Array = names.iter().map(|n| n.and_then(type_oid)).collect();
                Ok(ColumnarValue::Array(Arc::new(oids)))
            }
            other => Err(DataFusionError::Internal(format!(
                "to_regtype: unexpected argument {other:?}"
            ))),
        }),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(JsonBuildObject::default()));
    ctx.register_udf(ScalarUDF::new_from_impl(PgExpandArray::default()));
    // No index or constraint exists; PostgreSQL answers NULL for an OID that names none.
    for name in ["pg_get_indexdef", "pg_get_constraintdef"] {
        let any_arguments = Signature::variadic_any(Volatility::Stable);
        ctx.register_udf(ScalarUDF::new_from_impl(NoneHere::new(name, any_arguments)));
    }
    // Every collation there is (none but the default) is visible.
    ctx.register_udf(create_udf(
        "pg_collation_is_visible",
        vec![DataType::Int64],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|_| Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))),
    ));
    // No column here is fed by a sequence.
    ctx.register_udf(ScalarUDF::new_from_impl(NoneHere::new(
        "pg_get_serial_sequence",
        Signature::exact(vec![DataType::Utf8, DataType::Utf8], Volatility::Immutable),
    )));
    ctx.register_udf(create_udf(
        "current_setting",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|args| {
            let setting = |name: &str| {
                setting(name).ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "unrecognized configuration parameter \"{name}\""
                    ))
                })
            };
            match &args[0] {
                ColumnarValue::Scalar(ScalarValue::Utf8(name)) => Ok(ColumnarValue::Scalar(
                    ScalarValue::Utf8(name.as_deref().map(setting).transpose()?),
                )),
                ColumnarValue::Array(names) => {
                    let names = names
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| {
                            DataFusionError::Internal("current_setting: not text".into())
                        })?;
                    let values = (0..names.len())
                        .map(|i| {
                            (!names.is_null(i))
                                .then(|| setting(names.value(i)))
                                .transpose()
                        })
                        .collect::<Result<StringArray, _>>()?;
                    Ok(ColumnarValue::Array(Arc::new(values)))
                }
                other => Err(DataFusionError::Internal(format!(
                    "current_setting: unexpected argument {other:?}"
                ))),
            }
        }),
    ));
}

/// `json_build_object(key, value, …)`: SQLAlchemy's inspector builds identity and
/// collation details with it (in branches no assay column takes, but the query must
/// plan).
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBuildObject {
    signature: Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(DataFusionError::Plan(
                "json_build_object: argument list must have even number of elements".into(),
            ));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = (0..args.number_rows)
            .map(|row| {
                let mut object = serde_json::Map::new();
                for pair in arrays.chunks(2) {
                    let key = array_value_to_string(&pair[0], row)?;
                    object.insert(key, json_value(&pair[1], row)?);
                }
                Ok(Some(serde_json::Value::Object(object).to_string()))
            })
            .collect::<datafusion::common::Result<StringArray>>()?;
        Ok(ColumnarValue::Array(Arc::new(rows)))
    }
}

/// `information_schema._pg_expandarray(keys)`: pgjdbc's primary-key and index queries
/// read `(…).x` and `(…).n` of it over `pg_index.indkey`. In PostgreSQL it returns a row
/// per key; a scalar function cannot, so this answers the first key (`n` = 1): exact for
/// one-column keys. assay's own tables have no keys, so the queries' joins reach no row
/// of theirs and the answers are the empty ones PostgreSQL gives for such tables.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgExpandArray {
    signature: Signature,
}

impl Default for PgExpandArray {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl PgExpandArray {
    fn fields() -> datafusion::arrow::datatypes::Fields {
        use datafusion::arrow::datatypes::Field;
        vec![
            Field::new("x", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
        ]
        .into()
    }
}

impl ScalarUDFImpl for PgExpandArray {
    fn name(&self) -> &str {
        "_pg_expandarray"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        use datafusion::arrow::array::{Int64Array, StructArray};
        use datafusion::arrow::buffer::NullBuffer;
        let keys = ColumnarValue::values_to_arrays(&args.args)?;
        let keys = &keys[0];
        // The first key of each row: `int2vector` text ("1 2") or a list's first element.
        let first: Vec<Option<i64>> = (0..keys.len())
            .map(|row| {
                if keys.is_null(row) {
                    return Ok(None);
                }
                let text = array_value_to_string(keys, row)?;
                Ok(text
                    .trim_matches(|c| c == '[' || c == ']' || c == '{' || c == '}')
                    .split([' ', ','])
                    .find(|t| !t.is_empty())
                    .and_then(|t| t.trim().parse().ok()))
            })
            .collect::<datafusion::common::Result<_>>()?;
        let nulls = NullBuffer::from(first.iter().map(Option::is_some).collect::<Vec<_>>());
        let n: Int64Array = first.iter().map(|k| k.map(|_| 1)).collect();
        let x: Int64Array = first.into_iter().collect();
        let rows = StructArray::try_new(
            Self::fields(),
            vec![Arc::new(x) as ArrayRef, Arc::new(n)],
            Some(nulls),
        )?;
        Ok(ColumnarValue::Array(Arc::new(rows)))
    }
}

/// A catalog function about objects assay has none of (an index's or constraint's
/// definition, a column's sequence): text NULL for every argument, as PostgreSQL answers
/// for an object that does not exist.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NoneHere {
    name: &'static str,
    signature: Signature,
}

impl NoneHere {
    fn new(name: &'static str, signature: Signature) -> Self {
        Self { name, signature }
    }
}

impl ScalarUDFImpl for NoneHere {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        _args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

/// One cell as JSON: numbers and booleans bare, NULL as null, the rest as text.
fn json_value(array: &ArrayRef, row: usize) -> datafusion::common::Result<serde_json::Value> {
    if array.is_null(row) || *array.data_type() == DataType::Null {
        return Ok(serde_json::Value::Null);
    }
    let text = array_value_to_string(array, row)?;
    let dt = array.data_type();
    Ok(if dt.is_numeric() || *dt == DataType::Boolean {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    } else {
        serde_json::Value::String(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn version_reads_as_postgresql_and_names_assay() {
        let ctx = SessionContext::new();
        register_functions(&ctx);
        let batches = ctx
            .sql(
                "SELECT version(), current_setting('server_version_num'), current_setting(name), \
                 json_build_object('name', name, 'n', 2, 'on', true, 'none', NULL) \
                 FROM (VALUES ('search_path')) AS t(name)",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = |c: usize| {
            batches[0]
                .column(c)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .value(0)
                .to_owned()
        };
        // SQLAlchemy's pattern: `PostgreSQL <major>.<minor>`.
        assert!(
            text(0).starts_with("PostgreSQL 16.6 (assay "),
            "{}",
            text(0)
        );
        assert!(text(0).contains("Apache DataFusion"), "{}", text(0));
        assert_eq!(text(1), "160006");
        assert_eq!(text(2), "public");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text(3)).unwrap(),
            serde_json::json!({"name": "search_path", "n": 2, "on": true, "none": null})
        );
        let unknown = ctx
            .sql("SELECT current_setting('no_such_thing')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(
            unknown
                .to_string()
                .contains("unrecognized configuration parameter"),
            "{unknown}"
        );
    }
}

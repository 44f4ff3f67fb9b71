//! What Flight SQL clients ask of the server before any query: `GetSqlInfo` (who the
//! server is, that it is read-only, how identifiers are quoted), `GetXdbcTypeInfo` (the
//! types its answers hold, for JDBC/ODBC bridges and BI tools) and `GetPrimaryKeys`
//! (none: assay's tables have no keys).

use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{Nullable, Searchable, SqlInfo, XdbcDataType, XdbcDatetimeSubcode};

/// The server's answers to `GetSqlInfo`.
pub fn sql_info() -> &'static SqlInfoData {
    static INFO: OnceLock<SqlInfoData> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut builder = SqlInfoDataBuilder::new();
        builder.append(SqlInfo::FlightSqlServerName, "assay");
        builder.append(
            SqlInfo::FlightSqlServerVersion,
            format!(
                "{} (Apache DataFusion {})",
                env!("CARGO_PKG_VERSION"),
                datafusion::DATAFUSION_VERSION
            )
            .as_str(),
        );
        builder.append(SqlInfo::FlightSqlServerArrowVersion, arrow::ARROW_VERSION);
        builder.append(SqlInfo::FlightSqlServerReadOnly, true);
        builder.append(SqlInfo::FlightSqlServerSql, true);
        builder.append(SqlInfo::FlightSqlServerSubstrait, false);
        builder.append(SqlInfo::SqlDdlCatalog, false);
        builder.append(SqlInfo::SqlDdlSchema, false);
        builder.append(SqlInfo::SqlDdlTable, false);
        builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        builder
            .build()
            .expect("the fixed server info has one value per name")
    })
}

/// One type of assay's answers as JDBC/ODBC describe it.
fn xdbc(name: &str, data_type: XdbcDataType, column_size: Option<i32>) -> XdbcTypeInfo {
    let (sql_data_type, subcode) = match data_type {
        // ODBC's "datetime" SQL type, told apart by its subcode.
        XdbcDataType::XdbcDate | XdbcDataType::XdbcTimestamp => (
            XdbcDataType::XdbcDatetime,
            Some(match data_type {
                // ODBC's SQL_CODE_DATE (1), which prost names by the proto's first alias.
                XdbcDataType::XdbcDate => XdbcDatetimeSubcode::XdbcSubcodeYear,
                _ => XdbcDatetimeSubcode::XdbcSubcodeTimestampWithTimezone,
            }),
        ),
        other => (other, None),
    };
    let numeric = matches!(
        data_type,
        XdbcDataType::XdbcInteger | XdbcDataType::XdbcBigint | XdbcDataType::XdbcDouble
    );
    XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type,
        column_size,
        literal_prefix: (data_type == XdbcDataType::XdbcVarchar).then(|| "'".to_owned()),
        literal_suffix: (data_type == XdbcDataType::XdbcVarchar).then(|| "'".to_owned()),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: false,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.to_owned()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type,
        datetime_subcode: subcode,
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// The server's answers to `GetXdbcTypeInfo`: every type assay's tables and views hold.
pub fn xdbc_types() -> &'static XdbcTypeInfoData {
    static TYPES: OnceLock<XdbcTypeInfoData> = OnceLock::new();
    TYPES.get_or_init(|| {
        let mut builder = XdbcTypeInfoDataBuilder::new();
        for info in [
            xdbc("BOOLEAN", XdbcDataType::XdbcBit, Some(1)),
            xdbc("INTEGER", XdbcDataType::XdbcInteger, Some(32)),
            xdbc("BIGINT", XdbcDataType::XdbcBigint, Some(64)),
            xdbc("DOUBLE", XdbcDataType::XdbcDouble, Some(53)),
            xdbc("VARCHAR", XdbcDataType::XdbcVarchar, None),
            xdbc("DATE", XdbcDataType::XdbcDate, None),
            xdbc(
                "TIMESTAMP WITH TIME ZONE",
                XdbcDataType::XdbcTimestamp,
                None,
            ),
        ] {
            builder.append(info);
        }
        builder.build().expect("the fixed type list builds")
    })
}

/// `GetPrimaryKeys`' result schema (Flight SQL's `CommandGetPrimaryKeys`).
pub fn primary_keys_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_seq", DataType::Int32, false),
        Field::new("key_name", DataType::Utf8, true),
    ]))
}

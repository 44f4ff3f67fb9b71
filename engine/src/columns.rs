//! Reading query results column by column, cast to the type the caller wants, with
//! errors that name the query and the column.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType,
};
use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{EngineError, Result};

/// One batch of a named query.
pub struct Columns<'a> {
    pub query: &'static str,
    pub batch: &'a RecordBatch,
}

impl Columns<'_> {
    fn get(&self, name: &str, to: &DataType) -> Result<ArrayRef> {
        let col = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| EngineError::Column {
                query: self.query,
                column: name.into(),
                message: "missing".into(),
            })?;
        cast(col, to).map_err(|e| EngineError::Column {
            query: self.query,
            column: name.into(),
            message: e.to_string(),
        })
    }

    pub fn strings(&self, name: &str) -> Result<Vec<Option<String>>> {
        let a = self.get(name, &DataType::Utf8)?;
        Ok(a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    }

    /// Strings where NULL means empty.
    pub fn texts(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .strings(name)?
            .into_iter()
            .map(Option::unwrap_or_default)
            .collect())
    }

    /// Floats where NULL means 0.
    pub fn floats(&self, name: &str) -> Result<Vec<f64>> {
        let a = self.get(name, &DataType::Float64)?;
        let a = a.as_primitive::<Float64Type>();
        Ok((0..a.len())
            .map(|i| if a.is_null(i) { 0.0 } else { a.value(i) })
            .collect())
    }

    /// Floats with their NULLs.
    pub fn optional_floats(&self, name: &str) -> Result<Vec<Option<f64>>> {
        let a = self.get(name, &DataType::Float64)?;
        Ok(a.as_primitive::<Float64Type>().iter().collect())
    }

    /// Integers where NULL means 0.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        let a = self.get(name, &DataType::Int64)?;
        let a = a.as_primitive::<Int64Type>();
        Ok((0..a.len())
            .map(|i| if a.is_null(i) { 0 } else { a.value(i) })
            .collect())
    }

    /// Booleans where NULL means false.
    pub fn bools(&self, name: &str) -> Result<Vec<bool>> {
        let a = self.get(name, &DataType::Boolean)?;
        let a = a.as_boolean();
        Ok((0..a.len()).map(|i| !a.is_null(i) && a.value(i)).collect())
    }

    pub fn timestamps(&self, name: &str) -> Result<Vec<Option<DateTime<Utc>>>> {
        let a = self.get(
            name,
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        )?;
        let a = a.as_primitive::<TimestampMicrosecondType>();
        Ok(a.iter()
            .map(|v| v.and_then(DateTime::from_timestamp_micros))
            .collect())
    }

    pub fn dates(&self, name: &str) -> Result<Vec<Option<NaiveDate>>> {
        let a = self.get(name, &DataType::Date32)?;
        let a = a.as_primitive::<Date32Type>();
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        Ok(a.iter()
            .map(|v| v.and_then(|d| epoch.checked_add_signed(chrono::Duration::days(i64::from(d)))))
            .collect())
    }
}

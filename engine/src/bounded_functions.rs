//! Functions whose output size the caller chooses, bounded before they allocate.
//!
//! DataFusion counts the memory of operators (sorts, joins, aggregations) against a
//! query's pool, but not what a scalar function allocates for its answer: `repeat(s, n)`,
//! `lpad(s, n)`, `range(a, b)` and `array_repeat(x, n)` build whatever `n` asks for, in one
//! allocation, outside every limit — a 3 GB `repeat` aborted the server. Each of them is
//! registered again under its own name, wrapped: before the real function runs, the
//! wrapper works out from its arguments how many bytes the answer will take and refuses
//! the call (as a memory-limit error) when that is more than one query may use.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::compute::kernels::length::length;
use arrow::datatypes::{
    DataType, FieldRef, Int64Type, IntervalMonthDayNanoType, IntervalUnit, TimeUnit,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{ExprSchema, Result, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping,
};
use datafusion::prelude::SessionContext;

/// How a function's answer grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: the text's bytes, n times.
    Repeat,
    /// `lpad` / `rpad(text, n [, fill])`: at least n bytes.
    Pad,
    /// `range` / `generate_series(start, stop [, step])`: one 8-byte value per step.
    Range,
    /// `array_repeat(element, n)`: the element, n times.
    ArrayRepeat,
}

const BOUNDED: [(&str, Growth); 6] = [
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
    ("array_repeat", Growth::ArrayRepeat),
];

/// Replaces the functions above in `ctx` with wrappers that refuse an answer larger than
/// `max_bytes`. Table functions of the same names (`FROM range(…)`) stream their rows
/// and stay as they are.
pub fn bound_in(ctx: &SessionContext, max_bytes: usize) {
    let state = ctx.state();
    for (name, growth) in BOUNDED {
        if let Some(inner) = state.scalar_functions().get(name) {
            let bounded = Bounded {
                inner: inner.as_ref().clone(),
                growth,
                max_bytes: max_bytes as u64,
            };
            ctx.register_udf(ScalarUDF::new_from_impl(bounded));
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    growth: Growth,
    max_bytes: u64,
}

impl Bounded {
    /// Refuses the call when its answer would be larger than the bound.
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let bytes = answer_bytes(self.growth, &args.args, args.number_rows)?;
        if bytes > u128::from(self.max_bytes) {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{}(…) would build {} MiB in one call; one query may use {} MiB",
                self.inner.name(),
                bytes / (1024 * 1024),
                self.max_bytes / (1024 * 1024),
            )));
        }
        Ok(())
    }
}

/// The bytes the answer to one call will hold, summed over its rows, from the
/// arguments alone (a lower bound where characters may take more than one byte).
fn answer_bytes(growth: Growth, args: &[ColumnarValue], number_rows: usize) -> Result<u128> {
    // Constants only: the answer is one value, whatever the batch.
    let rows = if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
        1
    } else {
        number_rows
    };
    let per_row: Box<dyn Fn(usize) -> u128> = match (growth, args) {
        (Growth::Repeat, [text, times, ..]) => {
            let bytes = PerRow::of(text, |a| length(a))?;
            let times = PerRow::values(times)?;
            Box::new(move |i| bytes.at(i) * times.at(i))
        }
        (Growth::Pad, [_, width, ..]) => {
            let width = PerRow::values(width)?;
            Box::new(move |i| width.at(i))
        }
        (Growth::ArrayRepeat, [element, times, ..]) => {
            let element = element_bytes(element)?;
            let times = PerRow::values(times)?;
            Box::new(move |i| element * times.at(i))
        }
        (Growth::Range, _) => {
            let steps = RangeSteps::of(args)?;
            Box::new(move |i| 8 * steps.at(i))
        }
        _ => return Ok(0),
    };
    Ok((0..rows).map(per_row).sum())
}

/// The average size of one element `array_repeat` will copy, at least 8 bytes.
fn element_bytes(element: &ColumnarValue) -> Result<u128> {
    let array = match element {
        ColumnarValue::Array(a) => Arc::clone(a),
        ColumnarValue::Scalar(s) => s.to_array_of_size(1)?,
    };
    let each = array.get_array_memory_size() / array.len().max(1);
    Ok(each.max(8) as u128)
}

/// One integer per row, from a column or a constant.
struct PerRow {
    values: arrow::array::Int64Array,
    constant: bool,
}

impl PerRow {
    fn of(
        value: &ColumnarValue,
        measure: impl Fn(&ArrayRef) -> std::result::Result<ArrayRef, arrow::error::ArrowError>,
    ) -> Result<Self> {
        let (array, constant) = match value {
            ColumnarValue::Array(a) => (Arc::clone(a), false),
            ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
        };
        let measured = cast(&measure(&array)?, &DataType::Int64)?;
        Ok(Self {
            values: measured.as_primitive::<Int64Type>().clone(),
            constant,
        })
    }

    /// The argument's own values.
    fn values(value: &ColumnarValue) -> Result<Self> {
        Self::of(value, |a| Ok(Arc::clone(a)))
    }

    /// The row's value; `None` when null.
    fn signed(&self, row: usize) -> Option<i64> {
        let i = if self.constant { 0 } else { row };
        self.values.is_valid(i).then(|| self.values.value(i))
    }

    /// The row's value as a count: nulls and negative numbers are zero.
    fn at(&self, row: usize) -> u128 {
        self.signed(row)
            .and_then(|v| u128::try_from(v).ok())
            .unwrap_or(0)
    }
}

/// The values `range` / `generate_series` will produce per row: integers, or dates and
/// timestamps stepped by an interval (a month counted as 28 days, so never fewer).
struct RangeSteps {
    /// Start, stop and step in one unit: the integers themselves, or nanoseconds.
    start: Option<PerRow>,
    stop: PerRow,
    step: Option<PerRow>,
}

impl RangeSteps {
    fn of(args: &[ColumnarValue]) -> Result<Self> {
        let in_one_unit = |v: &ColumnarValue| PerRow::of(v, as_nanos_or_integers);
        let (start, stop, step) = match args {
            [stop] => (None, stop, None),
            [start, stop] => (Some(start), stop, None),
            [start, stop, step, ..] => (Some(start), stop, Some(step)),
            [] => return Err(DataFusionError::Plan("range needs a stop".into())),
        };
        Ok(Self {
            start: start.map(in_one_unit).transpose()?,
            stop: in_one_unit(stop)?,
            step: step.map(in_one_unit).transpose()?,
        })
    }

    fn at(&self, row: usize) -> u128 {
        let value = |p: &PerRow| i128::from(p.signed(row).unwrap_or(0));
        let start = self.start.as_ref().map_or(0, value);
        let stop = value(&self.stop);
        let step = self.step.as_ref().map_or(1, value).unsigned_abs().max(1);
        start.abs_diff(stop) / step + 1
    }
}

/// Dates and timestamps as nanoseconds since the epoch, intervals as their length in
/// nanoseconds, integers as themselves.
fn as_nanos_or_integers(a: &ArrayRef) -> std::result::Result<ArrayRef, arrow::error::ArrowError> {
    const DAY: i64 = 86_400_000_000_000;
    match a.data_type() {
        // Through seconds, saturating: nanoseconds overflow an i64 past the year 2262.
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
            let seconds = cast(a, &DataType::Timestamp(TimeUnit::Second, None))?;
            let seconds = cast(&seconds, &DataType::Int64)?;
            let nanos: arrow::array::Int64Array = seconds
                .as_primitive::<Int64Type>()
                .unary(|s| s.saturating_mul(1_000_000_000));
            Ok(Arc::new(nanos))
        }
        DataType::Interval(_) => {
            let mdn = cast(a, &DataType::Interval(IntervalUnit::MonthDayNano))?;
            let nanos: arrow::array::Int64Array =
                mdn.as_primitive::<IntervalMonthDayNanoType>().unary(|v| {
                    let (months, days, nanos) = IntervalMonthDayNanoType::to_parts(v);
                    (i64::from(months) * 28 + i64::from(days))
                        .saturating_mul(DAY)
                        .saturating_add(nanos)
                });
            Ok(Arc::new(nanos))
        }
        _ => Ok(Arc::clone(a)),
    }
}

#[warn(clippy::missing_trait_methods)] // Delegates, so it should implement every trait method.
impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.inner().display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Self {
            inner: updated,
            growth: self.growth,
            max_bytes: self.max_bytes,
        }))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.inner().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.inner().preimage(args, lit_expr, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.inner().struct_field_mapping(literal_args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}

//! assay's own event columns (DESIGN.md §1), as CSV or as the rows of a Parquet file
//! that need checking one by one.

use std::borrow::Cow;

use super::{Event, Header, RETURN_REASONS, Reject, RowFormat, RowMemory, blank_event};
use super::{event_type, parse_time, price};

pub(super) struct Canonical;

impl RowFormat for Canonical {
    fn required_columns(&self) -> &'static [&'static str] {
        &[
            "event_id",
            "event_time",
            "event_type",
            "style_id",
            "quantity",
            "market",
        ]
    }

    fn has_market(&self) -> bool {
        true
    }

    fn parse<'r>(
        &self,
        h: &Header,
        r: &'r csv::StringRecord,
        _: &'r str,
        _: &mut RowMemory,
    ) -> Result<Event<'r>, Reject> {
        let time = parse_time(h.required(r, "event_time")?)?;
        let kind = event_type(h.required(r, "event_type")?)?;
        let mut e = blank_event(
            h.required(r, "event_id")?.into(),
            time,
            h.required(r, "style_id")?.into(),
        );
        e.event_type = kind;
        let quantity = h.required(r, "quantity")?;
        e.quantity = match quantity.parse::<i32>() {
            Ok(q) if q >= 1 => q,
            _ => {
                return Err(Reject::new(
                    "bad quantity",
                    format!("`{quantity}` is not a whole number ≥ 1"),
                ));
            }
        };
        e.price = price(h.get(r, "price"))?;
        e.market = h.required(r, "market")?;
        if e.market == "ALL" {
            return Err(Reject::new(
                "bad market",
                "`ALL` is reserved for the pooled rows",
            ));
        }
        if let Some(channel) = h.get(r, "channel") {
            e.channel = channel;
        }
        let text = |name: &str| h.get(r, name);
        e.sku_id = text("sku_id").map(Cow::Borrowed);
        (e.size, e.user_id) = (text("size"), text("user_id"));
        (e.session_id, e.order_id) = (text("session_id"), text("order_id"));
        e.return_reason = text("return_reason");
        if let Some(reason) = e.return_reason
            && !RETURN_REASONS.contains(&reason)
        {
            return Err(Reject::new(
                "bad return reason",
                format!("`{reason}` is not one of {}", RETURN_REASONS.join(", ")),
            ));
        }
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, tests::parse, tests::record};

    #[test]
    fn quantity_market_and_return_reason_are_checked() {
        let row = |quantity: &'static str, market: &'static str| {
            record(&[
                "e1",
                "2026-09-01T10:00:00Z",
                "purchase",
                "S1",
                quantity,
                market,
            ])
        };
        let two = row("2", "US");
        let e = parse(Format::EventsCsv, &two).unwrap();
        assert_eq!((e.quantity, e.market), (2, "US"));
        assert_eq!(
            parse(Format::EventsCsv, &row("0", "US")).unwrap_err().kind,
            "bad quantity"
        );
        assert_eq!(
            parse(Format::EventsCsv, &row("1", "ALL")).unwrap_err().kind,
            "bad market"
        );
    }
}

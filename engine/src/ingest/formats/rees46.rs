//! REES46 "eCommerce behavior data": one row per view, cart or purchase, with the
//! product's category and brand, and no market.

use super::{Event, Header, Reject, RowFormat, RowMemory, blank_event, event_type, parse_time};
use super::{price, row_id};
use crate::source::schema::EventType;

pub(super) struct Rees46;

impl RowFormat for Rees46 {
    fn required_columns(&self) -> &'static [&'static str] {
        &[
            "event_time",
            "event_type",
            "product_id",
            "category_id",
            "category_code",
            "brand",
            "price",
            "user_id",
            "user_session",
        ]
    }

    fn parse<'r>(
        &self,
        h: &Header,
        r: &'r csv::StringRecord,
        market: &'r str,
        _: &mut RowMemory,
    ) -> Result<Event<'r>, Reject> {
        let time = parse_time(h.required(r, "event_time")?)?;
        let kind = event_type(h.required(r, "event_type")?)?;
        let style = h.required(r, "product_id")?;
        let (id, _) = row_id("rees46", r);
        let mut e = blank_event(id.into(), time, style.into());
        e.event_type = kind;
        e.user_id = Some(h.required(r, "user_id")?);
        e.session_id = h.get(r, "user_session");
        // A REES46 purchase has no order id; the session groups one checkout.
        if kind == EventType::Purchase {
            e.order_id = e.session_id;
        }
        e.price = price(h.get(r, "price"))?;
        e.market = market;
        e.category_hint = h
            .get(r, "category_code")
            .or_else(|| h.get(r, "category_id"));
        e.brand_hint = h.get(r, "brand");
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, tests::parse, tests::record};

    #[test]
    fn times_types_and_a_bad_price() {
        let mut row = vec![
            "2019-10-01 00:00:04 UTC",
            "purchase",
            "0044600062",
            "2103807459595387724",
            "",
            "shiseido",
            "35.79",
            "541312140",
            "72d76fde-8bb3-4e00-8c23-a032dfed738c",
        ];
        let good = record(&row);
        let e = parse(Format::Rees46, &good).unwrap();
        assert_eq!(e.event_time.to_rfc3339(), "2019-10-01T00:00:04+00:00");
        assert_eq!(e.style_id, "0044600062");
        assert_eq!(e.order_id, Some("72d76fde-8bb3-4e00-8c23-a032dfed738c"));
        assert_eq!(e.category_hint, Some("2103807459595387724"));
        row[6] = "abc";
        let err = parse(Format::Rees46, &record(&row)).unwrap_err();
        assert_eq!(err.kind, "bad price");
        assert!(err.detail.contains("`abc`"), "{err}");
    }
}

//! RetailRocket `events.csv`: views, add-to-carts and transactions by visitor, with
//! times in milliseconds since the epoch and no market.

use chrono::DateTime;

use super::{Event, Header, Reject, RowFormat, RowMemory, blank_event, row_id};
use crate::source::schema::EventType;

pub(super) struct Retailrocket;

impl RowFormat for Retailrocket {
    fn required_columns(&self) -> &'static [&'static str] {
        &["timestamp", "visitorid", "event", "itemid", "transactionid"]
    }

    fn parse<'r>(
        &self,
        h: &Header,
        r: &'r csv::StringRecord,
        market: &'r str,
        _: &mut RowMemory,
    ) -> Result<Event<'r>, Reject> {
        let raw_time = h.required(r, "timestamp")?;
        let millis: i64 = raw_time.parse().map_err(|_| {
            Reject::new(
                "bad time",
                format!("timestamp `{raw_time}` is not milliseconds since the epoch"),
            )
        })?;
        let time = DateTime::from_timestamp_millis(millis).ok_or_else(|| {
            Reject::new(
                "bad time",
                format!("timestamp `{raw_time}` is out of range"),
            )
        })?;
        let kind = match h.required(r, "event")? {
            "view" => EventType::View,
            "addtocart" => EventType::Cart,
            "transaction" => EventType::Purchase,
            other => {
                return Err(Reject::new(
                    "unknown event type",
                    format!("`{other}` (expected view, addtocart or transaction)"),
                ));
            }
        };
        let (id, _) = row_id("retailrocket", r);
        let mut e = blank_event(id.into(), time, h.required(r, "itemid")?.into());
        e.event_type = kind;
        e.user_id = Some(h.required(r, "visitorid")?);
        e.order_id = h.get(r, "transactionid");
        e.market = market;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, tests::parse, tests::record};
    use crate::source::schema::EventType;

    #[test]
    fn milliseconds_and_event_names() {
        let row = record(&["1433221332117", "257597", "addtocart", "355908", ""]);
        let e = parse(Format::Retailrocket, &row).unwrap();
        assert_eq!(e.event_time.to_rfc3339(), "2015-06-02T05:02:12.117+00:00");
        assert_eq!(e.event_type, EventType::Cart);
        assert_eq!(e.order_id, None);
        let err = parse(Format::Retailrocket, &record(&["x", "1", "view", "2", ""])).unwrap_err();
        assert_eq!(err.kind, "bad time");
        let err = parse(Format::Retailrocket, &record(&["1", "1", "like", "2", ""])).unwrap_err();
        assert_eq!(err.kind, "unknown event type");
    }
}

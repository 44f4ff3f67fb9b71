//! H&M `transactions_train.csv`: one line per unit bought, by day, with no time of
//! day, no market and no line id, so identical lines of a day are separate units.

use chrono::NaiveDate;

use super::{Event, Header, Reject, RowFormat, RowMemory, blank_event, price, row_id};
use crate::source::schema::EventType;

pub(super) struct Hm;

impl RowFormat for Hm {
    fn required_columns(&self) -> &'static [&'static str] {
        &[
            "t_dat",
            "customer_id",
            "article_id",
            "price",
            "sales_channel_id",
        ]
    }

    /// Identical lines are counted within their day (the file is sorted by day).
    fn ordered(&self) -> bool {
        true
    }

    fn parse<'r>(
        &self,
        h: &Header,
        r: &'r csv::StringRecord,
        market: &'r str,
        memory: &mut RowMemory,
    ) -> Result<Event<'r>, Reject> {
        let day = h.required(r, "t_dat")?;
        let time = NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map_err(|_| Reject::new("bad time", format!("t_dat `{day}` is not YYYY-MM-DD")))?
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        let article = h.required(r, "article_id")?;
        if !article.bytes().all(|b| b.is_ascii_digit()) || article.len() > 10 {
            return Err(Reject::new(
                "bad id",
                format!("article_id `{article}` is not up to 10 digits"),
            ));
        }
        // Spreadsheets drop the leading zero of H&M's 10-digit article ids.
        let article = format!("{article:0>10}");
        let (id, key) = row_id("hm", r);
        // Identical lines are several units of one article bought the same day.
        let n = memory.count(day, key);
        let mut e = blank_event(
            format!("{id}#{n}").into(),
            time,
            article[..7].to_string().into(),
        );
        e.event_type = EventType::Purchase;
        e.sku_id = Some(article.into());
        e.user_id = Some(h.required(r, "customer_id")?);
        e.price = Some(price(Some(h.required(r, "price")?))?.unwrap_or_default());
        e.channel = match h.required(r, "sales_channel_id")? {
            "1" => "store",
            "2" => "web",
            other => {
                return Err(Reject::new(
                    "bad channel",
                    format!("sales_channel_id `{other}` is not 1 or 2"),
                ));
            }
        };
        e.market = market;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Format, RowMemory, tests::record};
    use super::*;

    #[test]
    fn identical_lines_of_a_day_are_separate_units() {
        let h = Header::new(&record(Hm.required_columns()), Format::Hm).unwrap();
        let row = record(&["2018-09-20", "c1", "663713001", "0.0508", "2"]);
        let next_day = record(&["2018-09-21", "c1", "663713001", "0.0508", "2"]);
        let mut memory = RowMemory::default();
        let a = Hm.parse(&h, &row, "SE", &mut memory).unwrap();
        let b = Hm.parse(&h, &row, "SE", &mut memory).unwrap();
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(a.style_id, "0663713");
        assert_eq!(a.sku_id.as_deref(), Some("0663713001"));
        // A new day starts the count again: its first line is `#1`.
        let c = Hm.parse(&h, &next_day, "SE", &mut memory).unwrap();
        assert!(c.event_id.ends_with("#1"), "{}", c.event_id);
        assert!(b.event_id.ends_with("#2"), "{}", b.event_id);
    }
}

//! How two fields of a [`super::Decision`] are written, in a table and in JSON alike.

/// `f64::INFINITY` (unbounded) ⇄ NULL; JSON has no infinity either.
pub mod unbounded {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            s.serialize_some(value)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// Reason codes as one comma-separated text (`high_rate,sold_out`): what runs have
/// always been stored as, and what SQL users filter with `LIKE`. (serde_arrow's column
/// builders do not say whether they are human-readable, so JSON gets the same text.)
pub mod reason_list {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::decision::Reason;

    pub fn serialize<S: Serializer>(reasons: &[Reason], s: S) -> Result<S::Ok, S::Error> {
        let codes: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
        s.serialize_str(&codes.join(","))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Reason>, D::Error> {
        let text = String::deserialize(d)?;
        text.split(',')
            .filter(|code| !code.is_empty())
            .map(|code| {
                Reason::parse(code)
                    .ok_or_else(|| D::Error::custom(format!("unknown reason code `{code}`")))
            })
            .collect()
    }
}

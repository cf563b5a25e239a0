use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::fmt;

/// What a ticket carries to its redeemer besides the user: a JSON object,
/// kept as its JSON text. Claims a caller sends are kept byte for byte as
/// they came (numbers of any size or precision pass through untouched);
/// claims from a credential are serialised once. Either way the text is
/// sealed as it is and written into the redeem answer without being parsed
/// into values again.
pub(crate) struct Claims(Box<RawValue>);

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims may hold personal data: never in a log line.
        write!(f, "Claims({} bytes)", self.len())
    }
}

impl Claims {
    /// `{}`.
    pub(crate) fn empty() -> Self {
        Claims::from_map(&Map::new())
    }

    pub(crate) fn from_map(map: &Map<String, Value>) -> Self {
        // Serialising a map of JSON values cannot fail (its keys are
        // strings); the text is not parsed again.
        Claims(serde_json::value::to_raw_value(map).unwrap_or_else(|_| empty_raw()))
    }

    /// The claims of a request, as the caller wrote them; `None` unless they
    /// are a JSON object.
    pub(crate) fn from_raw(raw: Box<RawValue>) -> Option<Self> {
        raw.get().starts_with('{').then_some(Claims(raw))
    }

    /// Serialised size in bytes (what `tickets.max_claims_bytes` limits).
    pub(crate) fn len(&self) -> usize {
        self.0.get().len()
    }

    pub(crate) fn as_raw(&self) -> &RawValue {
        &self.0
    }
}

fn empty_raw() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("{{}} is JSON"))
}

impl Serialize for Claims {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Claims {
    /// Only from a sealed payload, which wsticket wrote itself: an object.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if raw.get().starts_with('{') {
            Ok(Claims(raw))
        } else {
            Err(serde::de::Error::custom("claims are not a JSON object"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_round_trip_as_their_json_text() {
        let map = json!({"roles": ["admin"], "n": 1})
            .as_object()
            .unwrap()
            .clone();
        let c = Claims::from_map(&map);
        assert_eq!(c.as_raw().get(), r#"{"roles":["admin"],"n":1}"#);
        assert_eq!(c.len(), c.as_raw().get().len());
        let text = serde_json::to_string(&json!({"c": c})).unwrap();
        assert_eq!(text, r#"{"c":{"roles":["admin"],"n":1}}"#);
        let back: Claims = serde_json::from_str(r#"{"x": 1}"#).unwrap();
        assert_eq!(back.as_raw().get(), r#"{"x": 1}"#);
        assert!(serde_json::from_str::<Claims>("[1]").is_err());
        assert_eq!(Claims::empty().as_raw().get(), "{}");
        assert_eq!(format!("{c:?}"), "Claims(25 bytes)");
    }
}

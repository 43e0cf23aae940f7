//! Derive plumbing of `#[keep]` assigns: writing them into a JSON object and reading them
//! back (see `task::keep` for the signed blob they travel in).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The kept fields of a view, being written.
pub type KeptMap = serde_json::Map<String, serde_json::Value>;

/// Writes one kept field (a field that does not serialize is left out, logged).
pub fn keep_field<T: Serialize>(out: &mut KeptMap, name: &str, value: &T) {
    match serde_json::to_value(value) {
        Ok(v) => {
            out.insert(name.to_string(), v);
        }
        Err(e) => tracing::error!(field = name, error = %e, "a #[keep] field does not serialize"),
    }
}

/// The kept fields as one JSON object.
pub fn kept_object(map: KeptMap) -> serde_json::Value {
    serde_json::Value::Object(map)
}

/// Reads one kept field back: `Ok(None)` when the blob does not have it.
pub fn restored_field<T: DeserializeOwned>(
    kept: &serde_json::Value,
    name: &str,
) -> Result<Option<T>, String> {
    match kept.get(name) {
        None => Ok(None),
        Some(v) => T::deserialize(v)
            .map(Some)
            .map_err(|e| format!("#[keep] field `{name}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_a_wrong_type_is_an_error() {
        let mut m = KeptMap::new();
        keep_field(&mut m, "editing", &Some(7_i64));
        keep_field(&mut m, "tab", &"cards");
        let v = kept_object(m);
        assert_eq!(
            restored_field::<Option<i64>>(&v, "editing"),
            Ok(Some(Some(7)))
        );
        assert_eq!(
            restored_field::<String>(&v, "tab"),
            Ok(Some("cards".to_string()))
        );
        assert_eq!(restored_field::<String>(&v, "missing"), Ok(None));
        assert!(restored_field::<i64>(&v, "tab").is_err());
    }
}

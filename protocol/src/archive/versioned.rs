//! The envelope every JSON metadata object of the archive shares: one object whose first
//! field is `format`, checked before any other field is read, since a newer format may
//! hold any fields at all.

use serde::Serialize;
use serde_json::{Map, Value};

/// An envelope that cannot be opened. The texts state the cause only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Not a JSON object, or without `format`.
    Invalid(String),
    /// A `format` this version does not read, as found.
    Unsupported(String),
}

/// The JSON with `format` as its first field, as stored.
#[derive(Serialize)]
struct Versioned<'a, T> {
    format: u64,
    #[serde(flatten)]
    body: &'a T,
}

/// `body` in an envelope of `format`: pretty UTF-8 JSON.
pub fn seal<T: Serialize>(format: u64, body: &T) -> Vec<u8> {
    // Serializing metadata cannot fail: every map key is a string and no field's
    // serializer returns an error (a non-finite f64 becomes null), so the empty
    // fallback is never taken.
    serde_json::to_vec_pretty(&Versioned { format, body }).unwrap_or_default()
}

/// The fields of an envelope of `format`, without `format`.
pub fn open(bytes: &[u8], format: u64) -> Result<Map<String, Value>, EnvelopeError> {
    let mut fields: Map<String, Value> =
        serde_json::from_slice(bytes).map_err(|err| EnvelopeError::Invalid(err.to_string()))?;
    match fields.remove("format") {
        Some(found) if found.as_u64() == Some(format) => Ok(fields),
        Some(found) => Err(EnvelopeError::Unsupported(found.to_string())),
        None => Err(EnvelopeError::Invalid("missing field `format`".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_format_first_and_opens_only_that_format() {
        let body = serde_json::json!({"a": 1});
        let sealed = seal(1, &body);
        assert!(
            String::from_utf8_lossy(&sealed)
                .trim_start_matches(['{', '\n', ' '])
                .starts_with("\"format\": 1")
        );
        assert_eq!(open(&sealed, 1).unwrap(), body.as_object().unwrap().clone());
        assert_eq!(
            open(&sealed, 2),
            Err(EnvelopeError::Unsupported("1".into()))
        );
        assert!(matches!(open(b"{}", 1), Err(EnvelopeError::Invalid(_))));
        assert!(matches!(open(b"[1]", 1), Err(EnvelopeError::Invalid(_))));
    }
}

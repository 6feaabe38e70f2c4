//! The `key=value` text of logship's small records (the identity, MariaDB switch records):
//! one pair per line, every key once, and nothing left over.

/// Text that breaks the `key=value` rules. The texts name the cause only; the record's
/// reader says which record it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A line without `=`.
    #[error("line \"{line}\" is not key=value")]
    NotKeyValue {
        /// The offending line.
        line: String,
    },
    /// A key given twice.
    #[error("has key \"{key}\" twice")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// A required key is absent.
    #[error("lacks key \"{key}\"")]
    MissingKey {
        /// The missing key.
        key: &'static str,
    },
    /// A key the record does not have.
    #[error("has unknown key \"{key}\"")]
    UnknownKey {
        /// The unknown key.
        key: String,
    },
    /// A value that is not a decimal number of the field's width.
    #[error("key \"{key}\" has value \"{value}\", not a decimal number")]
    NotANumber {
        /// The key.
        key: &'static str,
        /// The rejected value.
        value: String,
    },
}

/// The `key=value` lines of a record, consumed key by key so leftovers can be refused.
pub(crate) struct Fields<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Fields<'a> {
    /// Splits `text` into its pairs; empty lines are skipped.
    pub(crate) fn read(text: &'a str) -> Result<Fields<'a>, FieldError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| FieldError::NotKeyValue {
                    line: line.to_owned(),
                })?;
            if pairs.iter().any(|(k, _)| *k == key) {
                return Err(FieldError::DuplicateKey {
                    key: key.to_owned(),
                });
            }
            pairs.push((key, value));
        }
        Ok(Fields(pairs))
    }

    /// The value of `key`, which must be present.
    pub(crate) fn take(&mut self, key: &'static str) -> Result<&'a str, FieldError> {
        let index = self
            .0
            .iter()
            .position(|(k, _)| *k == key)
            .ok_or(FieldError::MissingKey { key })?;
        Ok(self.0.remove(index).1)
    }

    /// The value of `key` as a decimal number: digits only, no sign.
    pub(crate) fn number<T: std::str::FromStr>(
        &mut self,
        key: &'static str,
    ) -> Result<T, FieldError> {
        let value = self.take(key)?;
        // `u64::from_str` accepts a leading '+'; the stored form never has one.
        value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse().ok())
            .flatten()
            .ok_or_else(|| FieldError::NotANumber {
                key,
                value: value.to_owned(),
            })
    }

    /// Refuses any key not taken.
    pub(crate) fn finish(self) -> Result<(), FieldError> {
        match self.0.first() {
            Some((key, _)) => Err(FieldError::UnknownKey {
                key: (*key).to_owned(),
            }),
            None => Ok(()),
        }
    }
}

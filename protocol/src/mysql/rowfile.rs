//! The text format of a logical backup's row chunks: what `LOAD DATA ... CHARACTER SET
//! binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n'` reads.
//!
//! A row is its values separated by a tab and ended by a newline. SQL NULL is `\N`. In a
//! value, backslash, tab, newline, carriage return and NUL are written `\\`, `\t`, `\n`,
//! `\r` and `\0`; every other byte is itself. Values are the server's text-protocol bytes,
//! unconverted (the session runs with `character_set_results = binary`).

/// Appends one row's next value; `first` is whether it is the row's first value.
pub fn push_value(out: &mut Vec<u8>, first: bool, value: Option<&[u8]>) {
    if !first {
        out.push(b'\t');
    }
    let Some(mut value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    while let Some((plain, rest)) = value
        .iter()
        .position(|&b| escape(b).is_some())
        .and_then(|at| value.split_at_checked(at))
    {
        out.extend_from_slice(plain);
        let Some((&special, rest)) = rest.split_first() else {
            break;
        };
        out.push(b'\\');
        out.push(escape(special).unwrap_or(special));
        value = rest;
    }
    out.extend_from_slice(value);
}

/// Ends a row.
pub fn end_row(out: &mut Vec<u8>) {
    out.push(b'\n');
}

/// The letter after the backslash for a byte that must be escaped.
fn escape(b: u8) -> Option<u8> {
    match b {
        b'\\' => Some(b'\\'),
        b'\t' => Some(b't'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        0 => Some(b'0'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads rows back as LOAD DATA does with these options.
    fn parse(mut data: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut rows = Vec::new();
        while let Some(end) = data.iter().position(|&b| b == b'\n') {
            let line = &data[..end];
            data = &data[end + 1..];
            let mut row = Vec::new();
            for field in line.split(|&b| b == b'\t') {
                if field == b"\\N" {
                    row.push(None);
                    continue;
                }
                let mut value = Vec::new();
                let mut bytes = field.iter();
                while let Some(&b) = bytes.next() {
                    if b != b'\\' {
                        value.push(b);
                        continue;
                    }
                    value.push(match bytes.next() {
                        Some(b't') => b'\t',
                        Some(b'n') => b'\n',
                        Some(b'r') => b'\r',
                        Some(b'0') => 0,
                        Some(&other) => other,
                        None => panic!("a dangling backslash"),
                    });
                }
                row.push(Some(value));
            }
            rows.push(row);
        }
        assert!(data.is_empty(), "a row without its newline");
        rows
    }

    #[test]
    fn escapes_the_separators_and_writes_null() {
        let mut out = Vec::new();
        push_value(&mut out, true, Some(b"a\tb\nc\\d\0e\rf"));
        push_value(&mut out, false, None);
        push_value(&mut out, false, Some(b""));
        push_value(&mut out, false, Some(b"N"));
        end_row(&mut out);
        assert_eq!(out, b"a\\tb\\nc\\\\d\\0e\\rf\t\\N\t\tN\n");
    }

    proptest! {
        #[test]
        fn rows_read_back_as_written(
            rows in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                    1..5,
                ),
                0..5,
            )
        ) {
            let mut out = Vec::new();
            for row in &rows {
                for (i, value) in row.iter().enumerate() {
                    push_value(&mut out, i == 0, value.as_deref());
                }
                end_row(&mut out);
            }
            prop_assert_eq!(parse(&out), rows);
        }
    }
}

//! NaN and the infinities in records: one encoding for both input formats and the output.
//!
//! JSON has no such numbers, so readers and writers differ. Tideflow follows Spark: a numeric
//! field reads `NaN`, `Infinity`, `-Infinity` (and `Inf`, `+Infinity`, any case, as Rust's and
//! Java's float parsers and Spark's `allowNonNumericNumbers` do) from a CSV cell, a JSON string
//! or a bare JSON token; JSON output writes them as the strings `"NaN"`, `"Infinity"` and
//! `"-Infinity"` (as Spark's JSON writer does), CSV output as `NaN`, `Infinity`, `-Infinity`.

/// The non-finite value `text` names (`NaN`, `inf`, `-Infinity`, ... in any case), if it names
/// one.
pub(super) fn parse_non_finite(text: &str) -> Option<f64> {
    let body = text.trim_start_matches(['+', '-']);
    if text.len() - body.len() > 1 {
        return None;
    }
    let named = ["nan", "inf", "infinity"]
        .iter()
        .any(|name| body.eq_ignore_ascii_case(name));
    named.then(|| text.parse::<f64>().ok()).flatten()
}

/// The text of a non-finite float: `NaN`, `Infinity` or `-Infinity`; `None` for a finite one.
pub(super) fn non_finite_text(value: f64) -> Option<&'static str> {
    if value.is_nan() {
        Some("NaN")
    } else if value == f64::INFINITY {
        Some("Infinity")
    } else if value == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// `line` with every bare non-finite token outside a string (`NaN`, `-Infinity`, ...) quoted,
/// so that a JSON parser reads it as a string; `None` if there is none. Only called for a line
/// that failed to parse, so a well-formed line costs nothing.
pub(super) fn quote_bare_non_finite(line: &str) -> Option<String> {
    let bytes = line.as_bytes();
    let mut quoted: Option<String> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let starts_token = matches!(byte, b'+' | b'-' | b'N' | b'n' | b'I' | b'i')
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if starts_token {
            let end = bytes[i..]
                .iter()
                .position(|b| !(b.is_ascii_alphabetic() || matches!(b, b'+' | b'-')))
                .map_or(bytes.len(), |n| i + n);
            let token = &line[i..end];
            // A value, not an (unquoted, so invalid) object key.
            let is_key = line[end..].trim_start().starts_with(':');
            if !is_key && parse_non_finite(token).is_some() {
                let out = quoted.get_or_insert_with(|| String::with_capacity(line.len() + 8));
                out.push_str(&line[copied..i]);
                out.push('"');
                out.push_str(token);
                out.push('"');
                copied = end;
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    quoted.map(|mut out| {
        out.push_str(&line[copied..]);
        out
    })
}

/// Decodes `line` with `decode`; if that fails and the line has bare non-finite tokens, decodes
/// it again with them quoted (and reports that attempt's error).
pub(super) fn decode_allowing_non_finite<T>(
    line: &str,
    decode: impl Fn(&str) -> Result<T, String>,
) -> Result<T, String> {
    match decode(line) {
        Ok(value) => Ok(value),
        Err(error) => match quote_bare_non_finite(line) {
            Some(quoted) => decode(&quoted),
            None => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_names_parse_in_any_case_and_others_do_not() {
        for text in ["NaN", "nan", "Infinity", "+Infinity", "-INF", "inf", "-Inf"] {
            assert!(!parse_non_finite(text).unwrap().is_finite(), "{text}");
        }
        assert!(parse_non_finite("-Infinity").unwrap() < 0.0);
        for text in ["1.5", "", "--inf", "Infinite", "NaNa", "null"] {
            assert_eq!(parse_non_finite(text), None, "{text}");
        }
        assert_eq!(non_finite_text(f64::NEG_INFINITY), Some("-Infinity"));
        assert_eq!(non_finite_text(1.0), None);
    }

    #[test]
    fn bare_tokens_are_quoted_outside_strings_only() {
        assert_eq!(
            quote_bare_non_finite(r#"{"v": NaN, "w": [-Infinity,+INF], "s": "NaN inf"}"#)
                .as_deref(),
            Some(r#"{"v": "NaN", "w": ["-Infinity","+INF"], "s": "NaN inf"}"#)
        );
        assert_eq!(quote_bare_non_finite(r#"{"v": "a\"NaN", "x": 1e5}"#), None);
        assert_eq!(quote_bare_non_finite(r#"{"v": nul}"#), None);
        assert_eq!(quote_bare_non_finite(r#"{NaN : 1}"#), None);
    }
}

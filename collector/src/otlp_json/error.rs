//! The error of decoding an OTLP/JSON request, naming the field that was wrong.

use serde_json::Value;

use super::path::FieldPath;

/// Why an OTLP/JSON body could not be decoded.
///
/// Every variant is the client's fault (HTTP 400, gRPC `INVALID_ARGUMENT`). The message names
/// the field by its path in the document, such as
/// `resourceSpans[0].scopeSpans[1].spans[3].traceId`, so that a sender can find the mistake.
#[derive(Debug, thiserror::Error)]
pub enum JsonDecodeError {
    /// The body is not JSON (or not UTF-8).
    #[error("invalid JSON at line {line} column {column}: {message}")]
    InvalidJson {
        /// The 1-based line where parsing stopped.
        line: usize,
        /// The 1-based column where parsing stopped.
        column: usize,
        /// What the JSON parser found wrong.
        message: String,
    },

    /// The body nests arrays and objects deeper than the parser allows.
    #[error(
        "too deeply nested JSON at line {line} column {column}: \
         more than {MAX_NESTING} levels of arrays and objects"
    )]
    TooDeep {
        /// The 1-based line of the opening bracket that went too deep.
        line: usize,
        /// The 1-based column of the opening bracket that went too deep.
        column: usize,
    },

    /// A field holds a JSON value of the wrong type, such as an object where an integer belongs.
    #[error("wrong type for {path}: expected {expected}, found {found}")]
    WrongType {
        /// Where the value is.
        path: String,
        /// What the field takes, such as `an integer or enum name`.
        expected: &'static str,
        /// What was there, such as `an object`.
        found: &'static str,
    },

    /// A trace or span id is not a hex string.
    #[error("invalid hex in {path}: {cause}")]
    InvalidHex {
        /// Where the value is.
        path: String,
        /// What the hex decoder found wrong.
        cause: hex::FromHexError,
    },

    /// A `bytesValue` is not base64.
    #[error("invalid base64 in {path}: {cause}")]
    InvalidBase64 {
        /// Where the value is.
        path: String,
        /// What the base64 decoder found wrong.
        cause: base64::DecodeError,
    },

    /// An integer field holds something that is not an integer of its width and sign.
    #[error("invalid integer in {path}: {value} is not {expected}")]
    InvalidInteger {
        /// Where the value is.
        path: String,
        /// The offending value as JSON text, shortened when long.
        value: String,
        /// What the field takes, such as `an unsigned 32-bit integer`.
        expected: &'static str,
    },

    /// A `doubleValue` string is neither a number nor `NaN`, `Infinity` or `-Infinity`.
    #[error(
        "invalid number in {path}: {value} is not a number, \"NaN\", \"Infinity\" or \"-Infinity\""
    )]
    InvalidDouble {
        /// Where the value is.
        path: String,
        /// The offending value as JSON text, shortened when long.
        value: String,
    },

    /// An enum field holds a name that the enum does not have.
    #[error("unknown enum name in {path}: {name}, expected one of {known}")]
    UnknownEnumName {
        /// Where the value is.
        path: String,
        /// The offending name as JSON text, shortened when long.
        name: String,
        /// The names the enum has, comma-separated.
        known: &'static str,
    },

    /// An object holds the same field twice, once in lowerCamelCase and once in snake_case.
    #[error("duplicate field in {path}: {field} is given both in lowerCamelCase and in snake_case")]
    DuplicateField {
        /// The object that holds the field.
        path: String,
        /// The field's lowerCamelCase name.
        field: String,
    },

    /// An `AnyValue` sets more than one of its alternatives, such as `stringValue` and `intValue`.
    #[error("conflicting values in {path}: both {first} and {second} are set")]
    ConflictingValues {
        /// Where the `AnyValue` is.
        path: String,
        /// The alternative met first.
        first: &'static str,
        /// The alternative met second.
        second: &'static str,
    },
}

/// How deep `serde_json` lets arrays and objects nest before it refuses the document.
pub(super) const MAX_NESTING: usize = 128;

/// The longest excerpt of an offending value that an error message quotes.
const MAX_EXCERPT_CHARS: usize = 64;

impl JsonDecodeError {
    /// Turns a `serde_json` parse failure into an error that keeps its position apart from its
    /// message, and that says plainly when the document was too deep.
    pub(super) fn from_parser(error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());

        // serde_json appends the position to its message; keep the message alone.
        let text = error.to_string();
        let suffix = format!(" at line {line} column {column}");
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();

        if message == "recursion limit exceeded" {
            return Self::TooDeep { line, column };
        }
        Self::InvalidJson {
            line,
            column,
            message,
        }
    }

    /// A value of the wrong JSON type at `path`.
    pub(super) fn wrong_type(path: &FieldPath<'_>, expected: &'static str, found: &Value) -> Self {
        Self::WrongType {
            path: path.to_string(),
            expected,
            found: json_type_name(found),
        }
    }

    /// A string at `path` that is not an integer of the expected kind.
    pub(super) fn invalid_integer(
        path: &FieldPath<'_>,
        value: &Value,
        expected: &'static str,
    ) -> Self {
        Self::InvalidInteger {
            path: path.to_string(),
            value: excerpt(value),
            expected,
        }
    }

    /// A string at `path` that is not a double.
    pub(super) fn invalid_double(path: &FieldPath<'_>, value: &Value) -> Self {
        Self::InvalidDouble {
            path: path.to_string(),
            value: excerpt(value),
        }
    }

    /// An enum name at `path` that the enum does not have.
    pub(super) fn unknown_enum_name(path: &FieldPath<'_>, name: &str, known: &'static str) -> Self {
        Self::UnknownEnumName {
            path: path.to_string(),
            name: excerpt_str(name),
            known,
        }
    }
}

/// Names a JSON value's type with its article, for "expected …, found …".
fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value as JSON text, cut short so that a huge value cannot flood a log line.
fn excerpt(value: &Value) -> String {
    match value {
        Value::String(text) => excerpt_str(text),
        other => other.to_string(),
    }
}

/// The string as a JSON string literal, cut short after [`MAX_EXCERPT_CHARS`] characters.
fn excerpt_str(text: &str) -> String {
    match text.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", Value::from(&text[..cut])),
        None => Value::from(text).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{FieldPath, JsonDecodeError, MAX_EXCERPT_CHARS};

    #[test]
    fn parser_errors_keep_the_position_out_of_the_message() {
        let error = serde_json::from_slice::<serde_json::Value>(b"{\"a\": tru}").unwrap_err();

        let decoded = JsonDecodeError::from_parser(&error);

        assert_eq!(
            decoded.to_string(),
            "invalid JSON at line 1 column 10: expected ident"
        );
    }

    #[test]
    fn parser_recursion_limit_becomes_too_deep() {
        let body = "[".repeat(200);
        let error = serde_json::from_str::<serde_json::Value>(&body).unwrap_err();

        let decoded = JsonDecodeError::from_parser(&error);

        assert!(
            matches!(decoded, JsonDecodeError::TooDeep { line: 1, .. }),
            "{decoded:?}"
        );
        assert!(
            decoded
                .to_string()
                .starts_with("too deeply nested JSON at line 1 column ")
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let root = FieldPath::Root;
        let path = root.field("intValue");
        let long = "9".repeat(1000);

        let message = JsonDecodeError::invalid_integer(&path, &json!(long), "an integer");

        let quoted = format!("\"{}\"…", "9".repeat(MAX_EXCERPT_CHARS));
        assert_eq!(
            message.to_string(),
            format!("invalid integer in intValue: {quoted} is not an integer")
        );
    }

    #[test]
    fn wrong_type_names_both_types() {
        let root = FieldPath::Root;
        let path = root.field("kind");

        let message = JsonDecodeError::wrong_type(&path, "an integer or enum name", &json!({}));

        assert_eq!(
            message.to_string(),
            "wrong type for kind: expected an integer or enum name, found an object"
        );
    }
}

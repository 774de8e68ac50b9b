//! Where in the document the decoder is, for error messages.
//!
//! A [`FieldPath`] is a chain of borrowed nodes on the decoder's stack, so descending into a
//! field costs nothing; the text `resourceSpans[0].scopeSpans[1].spans[3].traceId` is only
//! rendered when an error is built.

use std::fmt;

/// A position in an OTLP/JSON document, from the top-level object down.
#[derive(Clone, Copy, Debug)]
pub(super) enum FieldPath<'a> {
    /// The top-level object itself.
    Root,
    /// A named field of the object at the parent position.
    Field(&'a FieldPath<'a>, &'static str),
    /// An element of the array at the parent position.
    Index(&'a FieldPath<'a>, usize),
}

impl<'a> FieldPath<'a> {
    /// The position of the field `name` (its lowerCamelCase name) below this one.
    pub(super) fn field(&'a self, name: &'static str) -> FieldPath<'a> {
        FieldPath::Field(self, name)
    }

    /// The position of array element `index` below this one.
    pub(super) fn index(&'a self, index: usize) -> FieldPath<'a> {
        FieldPath::Index(self, index)
    }
}

impl fmt::Display for FieldPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Root => f.write_str("the top-level object"),
            FieldPath::Field(FieldPath::Root, name) => f.write_str(name),
            FieldPath::Field(parent, name) => write!(f, "{parent}.{name}"),
            // An array directly at the top cannot occur in OTLP, but render it sensibly.
            FieldPath::Index(FieldPath::Root, index) => write!(f, "[{index}]"),
            FieldPath::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FieldPath;

    #[test]
    fn renders_fields_and_indices_like_a_javascript_accessor() {
        let root = FieldPath::Root;
        let resource_spans = root.field("resourceSpans");
        let first = resource_spans.index(0);
        let scope_spans = first.field("scopeSpans");
        let second = scope_spans.index(1);
        let trace_id = second.field("traceId");

        assert_eq!(
            trace_id.to_string(),
            "resourceSpans[0].scopeSpans[1].traceId"
        );
        assert_eq!(resource_spans.to_string(), "resourceSpans");
    }

    #[test]
    fn names_the_root_in_words() {
        assert_eq!(FieldPath::Root.to_string(), "the top-level object");
        assert_eq!(FieldPath::Root.index(2).to_string(), "[2]");
    }
}

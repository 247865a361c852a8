//! Why a flow, match or action string was rejected.

/// A parse error; its `Display` is one line that names the offending token
/// and says why (at least as much as `ovs-ofctl` says).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Neither a match field nor a keyword of the flow syntax.
    #[error("unknown field {0}")]
    UnknownField(String),
    /// A keyword that this kind of request does not take.
    #[error("{keyword}: not allowed in {context}")]
    NotAllowed {
        keyword: String,
        context: &'static str,
    },
    /// A keyword written without the value it needs.
    #[error("field {0} missing value")]
    MissingValue(String),
    /// `value` is not a valid value for the field, keyword or action `name`.
    #[error("{name}: {value}: {reason}")]
    BadValue {
        name: String,
        value: String,
        reason: String,
    },
    #[error("unknown action {0}")]
    UnknownAction(String),
    /// Valid OVS syntax for something fvs does not implement.
    #[error("{0}: not supported by fvs")]
    Unsupported(String),
    /// An add or modify without `actions=`.
    #[error("must specify an action")]
    MissingActions,
    /// The action list as a whole is invalid (instruction order, `drop`
    /// with other actions); the text is OVS's.
    #[error("{0}")]
    InvalidActions(String),
    /// An action that does not fit the rule's match or table.
    #[error("{action}: {reason} (actions are invalid with specified match)")]
    Inconsistent { action: String, reason: String },
    #[error("flow additions cannot use a cookie mask")]
    CookieMaskOnAdd,
    #[error("cannot set cookie (to match on a cookie, specify a mask, e.g. cookie=5/-1)")]
    CannotSetCookie,
    /// An error on line `line` (1-based) of a flow file.
    #[error("line {line}: {error}")]
    Line { line: usize, error: Box<ParseError> },
}

impl ParseError {
    pub(crate) fn bad(name: &str, value: &str, reason: impl Into<String>) -> ParseError {
        ParseError::BadValue {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

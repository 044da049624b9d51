//! Why a command is refused at the boundary, with the stable codes that go into
//! `x-payout-error-code` on `payout.dead`.

/// Stable machine codes. Renaming one breaks ops' alerts and the funds service: add, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// Not UTF-8 JSON, or not a JSON object.
    MalformedJson,
    /// JSON of the wrong shape: missing fields, wrong types, bad ids, impossible routes.
    SchemaInvalid,
    /// `version` is not one this worker speaks.
    UnsupportedVersion,
    /// An amount is not a positive decimal with at most two places.
    InvalidAmount,
    /// The legs do not add up to the withdrawal's amount.
    AmountMismatch,
    /// The currency is not in the configured list.
    UnsupportedCurrency,
    /// Missing, unknown-key or wrong HMAC signature.
    SignatureInvalid,
    /// An authentic command reuses a withdrawal id with different content.
    DuplicateConflict,
    /// The body or the AMQP headers are larger than the worker takes
    /// (`amqp.max_command_bytes`, `amqp.max_header_bytes`).
    TooLarge,
    /// A time in the command is impossible: a top-up paid after its approval, or in the
    /// future beyond the allowed clock skew.
    InvalidTimestamp,
}

impl RejectCode {
    /// Every code (a new one goes here too: the documentation test reads this list).
    pub const ALL: [RejectCode; 10] = [
        Self::MalformedJson,
        Self::SchemaInvalid,
        Self::UnsupportedVersion,
        Self::InvalidAmount,
        Self::AmountMismatch,
        Self::UnsupportedCurrency,
        Self::SignatureInvalid,
        Self::DuplicateConflict,
        Self::TooLarge,
        Self::InvalidTimestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::SchemaInvalid => "schema_invalid",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidAmount => "invalid_amount",
            Self::AmountMismatch => "amount_mismatch",
            Self::UnsupportedCurrency => "unsupported_currency",
            Self::SignatureInvalid => "signature_invalid",
            Self::DuplicateConflict => "duplicate_conflict",
            Self::TooLarge => "too_large",
            Self::InvalidTimestamp => "invalid_timestamp",
        }
    }
}

/// A refused command: a code for machines and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RejectCode;

    /// The published interface lists exactly the codes the worker uses: the AsyncAPI
    /// document's enum, and the README's list of reject codes.
    #[test]
    fn every_code_is_documented() {
        let asyncapi = include_str!("../../docs/asyncapi.yaml");
        let line = asyncapi
            .lines()
            .find(|l| l.trim_start().starts_with("enum: [malformed_json"))
            .expect("the dead-letter code enum");
        let listed: Vec<&str> = line
            .trim()
            .trim_start_matches("enum: [")
            .trim_end_matches(']')
            .split(", ")
            .collect();
        let ours: Vec<&str> = RejectCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
        let readme = include_str!("../../README.md");
        for code in ours {
            assert!(
                readme.contains(&format!("`{code}`")),
                "{code} not in README"
            );
        }
    }
}

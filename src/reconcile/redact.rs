//! Removes known secret values from text that came from elsewhere, such as an identity server's
//! error message that quotes the value it refused.

use crate::secret::SecretString;

/// What replaces a secret value.
pub const REDACTION: &str = "[redacted]";

/// The secret values of one reconcile.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: Vec<SecretString>,
}

impl Redactor {
    /// A redactor for these values; empty and very short ones (under 3 characters) are ignored,
    /// since replacing them would mangle every message without protecting anything. A secret
    /// with whitespace is also matched in the folded form (runs of whitespace as one
    /// space) in which error texts usually quote it.
    pub fn new(values: impl IntoIterator<Item = SecretString>) -> Self {
        let mut secrets: Vec<SecretString> = values
            .into_iter()
            .flat_map(|v| {
                let folded = v.expose().split_whitespace().collect::<Vec<_>>().join(" ");
                let variant = (folded != v.expose()).then(|| SecretString::new(folded));
                std::iter::once(v).chain(variant)
            })
            .filter(|v| v.expose().chars().count() >= 3)
            .collect();
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.expose().len()));
        Self { secrets }
    }

    /// `text` with every known secret value replaced by [`REDACTION`].
    pub fn redact(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_owned(), |acc, s| acc.replace(s.expose(), REDACTION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_known_secret_and_nothing_else() {
        let r = Redactor::new([
            "hunter2".into(),
            "hunter2-long".into(),
            "ab".into(),
            "".into(),
        ]);
        assert_eq!(
            r.redact("The value 'hunter2-long' is not valid; hunter2 neither; ab stays"),
            "The value '[redacted]' is not valid; [redacted] neither; ab stays"
        );
        assert_eq!(Redactor::default().redact("plain"), "plain");
        let spaced = Redactor::new(["pass  word\tx".into()]);
        assert_eq!(spaced.redact("got pass word x here"), "got [redacted] here");
    }
}

//! Names of configured objects (providers, accounts, models, routes' upstream models, keys): the
//! one check every name passes, whether it arrives through the admin API, the CLI or the config
//! file.
//!
//! A name is shown to operators in listings, logs and metrics, so what is stored must be what
//! they see: a name that displays as nothing (only invisible formatting characters, like a lone
//! U+200B ZERO WIDTH SPACE) or in another order than it is stored (a bidirectional override
//! such as U+202E RIGHT-TO-LEFT OVERRIDE, which reverses the text after it on screen) is
//! refused.

use std::fmt;

/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Why a name was refused. Displays as the end of a sentence that starts with the field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    /// Nothing visible is left once invisible formatting characters are removed.
    Invisible,
    /// A control character (C0, DEL, C1) or a line or paragraph separator.
    Control(char),
    /// A bidirectional embedding, override or isolate.
    Bidi(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("must not be empty"),
            Self::TooLong => write!(f, "must be at most {MAX_NAME_CHARS} characters"),
            Self::Invisible => f.write_str(
                "must contain a visible character; this name is only invisible formatting \
                 characters (like U+200B ZERO WIDTH SPACE)",
            ),
            Self::Control(c) => write!(
                f,
                "must not contain control characters (found U+{:04X}); use a single line of text",
                u32::from(*c)
            ),
            Self::Bidi(c) => write!(
                f,
                "must not contain bidirectional override or isolate characters (found U+{:04X}): \
                 they make a name display in another order than it is stored",
                u32::from(*c)
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name and returns it without surrounding whitespace: not blank, at most
/// [`MAX_NAME_CHARS`] characters, with a visible character, and with no control character and
/// no bidirectional embedding, override or isolate.
pub fn check_name(value: &str) -> Result<&str, NameError> {
    let name = value.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    if let Some(c) = name.chars().find(|&c| is_control(c)) {
        return Err(NameError::Control(c));
    }
    if let Some(c) = name.chars().find(|&c| is_bidi_control(c)) {
        return Err(NameError::Bidi(c));
    }
    if name.chars().all(|c| is_invisible(c) || c.is_whitespace()) {
        return Err(NameError::Invisible);
    }
    Ok(name)
}

/// C0 and C1 controls and DEL (general category Cc), and the line and paragraph separators,
/// which break a name across lines just the same.
fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The bidirectional embeddings and overrides (U+202A–U+202E) and isolates (U+2066–U+2069):
/// each changes how the text after it is ordered on screen.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Characters that display as nothing: the format characters (general category Cf, as of
/// Unicode 16) and the other default-ignorable code points (fillers, variation selectors).
/// They are allowed inside a name that has something visible (U+200D ZERO WIDTH JOINER belongs
/// in emoji sequences, U+200C in Persian words), never alone.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        // Category Cf.
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
            // Other default-ignorable code points: the combining grapheme joiner, the Hangul
            // fillers, Khmer inherent vowels, Mongolian variation selectors, variation
            // selectors and an unassigned one reserved as ignorable.
            | '\u{034F}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2065}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  a "), Ok("a"));
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(check_name(" \t "), Err(NameError::Empty));
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert_eq!(
            check_name(&"x".repeat(MAX_NAME_CHARS + 1)),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn invisible_names_are_refused_and_invisible_characters_inside_names_are_not() {
        let check = |name: &str, expected: Result<(), NameError>| {
            assert_eq!(check_name(name).map(|_| ()), expected, "{name:?}");
        };
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}",
            "\u{FEFF}",
            "\u{200E}",
            "\u{200F} \u{2060}",
            "\u{3164}",
            "\u{00AD}",
            "\u{E0041}\u{E0042}",
            "\u{FE0F}",
        ] {
            check(invisible, Err(NameError::Invisible));
        }
        check("a\u{202E}b", Err(NameError::Bidi('\u{202E}')));
        check("\u{2066}gpt\u{2069}", Err(NameError::Bidi('\u{2066}')));
        check("\u{202A}", Err(NameError::Bidi('\u{202A}')));
        check("a\nb", Err(NameError::Control('\n')));
        check("a\u{1b}[31mb", Err(NameError::Control('\u{1b}')));
        check("a\u{85}b", Err(NameError::Control('\u{85}')));
        check("a\u{2028}b", Err(NameError::Control('\u{2028}')));
        // Joiners belong inside emoji sequences and some scripts' words.
        check("team-\u{1F469}\u{200D}\u{1F4BB}", Ok(()));
        check(
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}",
            Ok(()),
        );
        check("gpt-4o-mini", Ok(()));
        check("modèle été", Ok(()));
    }

    #[test]
    fn messages_say_what_to_fix() {
        assert!(NameError::Bidi('\u{202E}').to_string().contains("U+202E"));
        assert!(NameError::Control('\n').to_string().contains("U+000A"));
        assert!(NameError::Invisible.to_string().contains("visible"));
    }
}

//! `${NAME}` references to environment variables inside string values.

/// Replaces every `${NAME}` in `raw` with the value of the variable `NAME`; a `$` not followed
/// by `{` stays as it is. On failure returns one message per bad reference. The messages name
/// variables but never quote the surrounding text, because that text may be a secret.
pub(super) fn interpolate(
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(raw.len());
    let mut problems = Vec::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push("unterminated \"${\"; a reference is written ${NAME}".to_owned());
            rest = "";
            break;
        };
        let name = &after[..end];
        if !is_variable_name(name) {
            problems.push(
                "invalid reference: a variable name is letters, digits and _, like ${API_KEY}"
                    .to_owned(),
            );
        } else {
            match env(name) {
                Some(value) => out.push_str(&value),
                None => problems.push(format!("environment variable {name} is not set")),
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::interpolate;

    fn check(raw: &str, expected: &str) {
        let env = |name: &str| match name {
            "A" => Some("alpha".to_owned()),
            "B" => Some("beta".to_owned()),
            "EMPTY" => Some(String::new()),
            "lower_1" => Some("low".to_owned()),
            _ => None,
        };
        let actual = match interpolate(raw, &env) {
            Ok(value) => format!("ok: {value}"),
            Err(problems) => problems.join("\n"),
        };
        assert_eq!(actual, expected, "input: {raw:?}");
    }

    #[test]
    fn expands_references() {
        check("plain", "ok: plain");
        check("", "ok: ");
        check("${A}", "ok: alpha");
        check("Bearer ${A}-${B}!", "ok: Bearer alpha-beta!");
        check("${A}${A}", "ok: alphaalpha");
        check("x${EMPTY}y", "ok: xy");
        check("${lower_1}", "ok: low");
        check("cost: $5 {x} $ {A}", "ok: cost: $5 {x} $ {A}");
        check("$${A}", "ok: $alpha");
    }

    #[test]
    fn reports_every_bad_reference() {
        check("${NOPE}", "environment variable NOPE is not set");
        check(
            "${X}-${A}-${Y}",
            "environment variable X is not set\nenvironment variable Y is not set",
        );
        check(
            "key-${A",
            "unterminated \"${\"; a reference is written ${NAME}",
        );
        check(
            "${NOPE} ${",
            "environment variable NOPE is not set\nunterminated \"${\"; a reference is written ${NAME}",
        );
        for bad in ["${}", "${1A}", "${A B}", "${A-B}"] {
            check(
                bad,
                "invalid reference: a variable name is letters, digits and _, like ${API_KEY}",
            );
        }
    }
}

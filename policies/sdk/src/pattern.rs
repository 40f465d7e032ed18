//! Glob patterns where `*` matches any run of characters (`*staging*`, `*-prod`).

/// True when `text` matches `pattern`; `*` matches any sequence, everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: an exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn matches_globs() {
        let table = [
            ("*-prod", "fe-web-prod", true),
            ("*-prod", "fe-web-prod-2", false),
            ("*-prod", "-prod", true),
            ("*staging*", "letsencrypt-staging", true),
            ("*staging*", "staging", true),
            ("*staging*", "letsencrypt-prod", false),
            ("plate-*", "plate-stg", true),
            ("plate-*-x", "plate-a-b-x", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("exact", "exact", true),
            ("exact", "exact2", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (pattern, text, expected) in table {
            assert_eq!(
                glob_match(pattern, text),
                expected,
                "{pattern:?} vs {text:?}"
            );
        }
    }
}

//! Kubernetes' rules for names, defined once for policies and the host: label and
//! annotation keys (`[prefix/]name`, Kubernetes' `IsQualifiedName`) and DNS subdomains.

/// A label or annotation key: an optional prefix that is a DNS subdomain (at most 253
/// characters) and a `/`, then a name of 1 to 63 characters: letters, digits, `-`,
/// `_` and `.`, starting and ending with a letter or digit.
pub fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(is_dns_subdomain)
}

/// A DNS subdomain as Kubernetes reads it (RFC 1123): at most 253 characters, dot-separated
/// labels of lowercase letters, digits and `-`, each starting and ending with a letter or digit.
pub fn is_dns_subdomain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        for key in [
            "environment",
            "nginx.ingress.kubernetes.io/ssl-redirect",
            "ingress.kubernetes.io/ssl-redirect",
            "example.com/A_b.c",
            "a",
            "app.kubernetes.io/name",
        ] {
            assert!(is_qualified_name(key), "{key}");
        }
        let long_name = "a".repeat(64);
        let long_prefix = format!("{}.io/x", "a".repeat(251));
        for key in [
            "",
            "/ssl-redirect",
            "nginx.ingress.kubernetes.io/",
            "Nginx.io/ssl-redirect",
            "a/b/c",
            "a..b/c",
            "-a.io/c",
            "a.io/-c",
            "a.io/has space",
            "_env",
            long_name.as_str(),
            long_prefix.as_str(),
        ] {
            assert!(!is_qualified_name(key), "{key}");
        }
    }
}

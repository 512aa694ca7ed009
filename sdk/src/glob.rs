//! Glob patterns for names and URIs: `*` matches any run of characters
//! (including none and `/`), `?` exactly one; everything else is literal.
//!
//! Written by hand: policies match tool names and URIs against a handful of
//! patterns, and a glob crate would bring path semantics (`/` boundaries,
//! character classes, `**`) that tool names do not have.
//!
//! ```
//! use switchyard_sdk::glob;
//!
//! assert!(glob::matches("*delete*", "github__delete_repo"));
//! assert!(glob::matches("file:///tmp/*", "file:///tmp/a/b.txt"));
//! assert!(!glob::matches("get_?", "get_all"));
//! assert!(glob::any(&["echo", "add"], "add"));
//! ```

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in
    // practice, never exponential.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `text` matches any of `patterns`.
pub fn any<S: AsRef<str>>(patterns: &[S], text: &str) -> bool {
    patterns.iter().any(|p| matches(p.as_ref(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything/at all"));
        assert!(matches("a*c", "abbbc"));
        assert!(matches("a*c", "ac"));
        assert!(!matches("a*c", "acb"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("*a*b*", "xxbxxaxx"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(matches("é*", "éclair"));
    }
}

//! LIKE pattern matching: `%` matches any run of characters, `_` exactly one.
//!
//! Greedy matching with one backtrack point (the last `%`), linear in practice and
//! never exponential. SQLite's LIKE ignores the case of ASCII letters; PostgreSQL's is
//! case-sensitive (its ILIKE is not): the caller says which.

/// Whether `text` matches `pattern`.
pub fn like(text: &str, pattern: &str, escape: Option<char>, case_insensitive: bool) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(if Some(c) == escape {
            Tok::Lit(chars.next().unwrap_or(c))
        } else if c == '%' {
            Tok::Any
        } else if c == '_' {
            Tok::One
        } else {
            Tok::Lit(c)
        });
    }
    let eq = |a: char, b: char| {
        if case_insensitive { a.eq_ignore_ascii_case(&b) } else { a == b }
    };
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Any) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                t += 1;
                p += 1;
            }
            Some(Tok::Lit(c)) if eq(*c, text[t]) => {
                t += 1;
                p += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    backtrack = Some((bp, bt + 1));
                    p = bp + 1;
                    t = bt + 1;
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Any)
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn wildcards() {
        assert!(like("hello", "h%o", None, false));
        assert!(like("hello", "h_llo", None, false));
        assert!(!like("hello", "h_lo", None, false));
        assert!(like("", "%", None, false));
        assert!(!like("", "_", None, false));
        assert!(like("abcabc", "%abc", None, false));
        assert!(like("a%b", "a!%b", Some('!'), false));
        assert!(!like("axb", "a!%b", Some('!'), false));
        assert!(like("HeLLo", "hello", None, true));
        assert!(!like("HeLLo", "hello", None, false));
        assert!(like("mississippi", "%iss%ppi", None, false));
    }
}

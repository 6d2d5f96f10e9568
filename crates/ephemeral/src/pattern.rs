//! Glob patterns over signal names.
//!
//! The grammar is deliberately tiny, and it is the same everywhere a pattern is accepted
//! (queries, retraction, dispatch, cancel/defer lists, watchers):
//!
//! * `*` matches any run of characters, including the empty one;
//! * `?` matches exactly one character (a Unicode scalar value, not a byte);
//! * every other character is literal and compared case-sensitively;
//! * there are no escapes and no character classes (`[`, `\`, `,` and spaces are literals);
//! * the empty pattern matches only the empty string.
//!
//! [`matches_any`] is the one place where a comma means something: each entry of its list may
//! hold several patterns separated by commas (tokens are trimmed, empty tokens are skipped).
//!
//! ```
//! use ephemeral::pattern::{matches, matches_any};
//!
//! assert!(matches("http.error.503", "http.error.*"));
//! assert!(matches("progress:7", "progress:?"));
//! assert!(!matches("HTTP.error.503", "http.*"));
//! assert!(matches_any("circuit-open", ["system-overload, circuit-*"]));
//! ```

use std::fmt;
use std::sync::Arc;

/// A compiled glob pattern (see the [module docs](self) for the grammar).
///
/// Compiling picks the cheapest matcher for the shape: an exact comparison when the pattern has
/// no wildcard, a prefix, suffix or substring test for `abc*`, `*abc` and `*abc*`, and the
/// general matcher otherwise. Cloning is cheap.
///
/// ```
/// use ephemeral::Pattern;
///
/// let p = Pattern::new("error.*");
/// assert!(p.matches("error.timeout"));
/// assert!(p.matches("error."));
/// assert!(!p.matches("warn.timeout"));
/// assert_eq!(p.as_str(), "error.*");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    source: Arc<str>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    /// No wildcard.
    Exact,
    /// `lit*`: the literal is `source[..len - 1]`.
    Prefix,
    /// `*lit`: the literal is `source[1..]`.
    Suffix,
    /// `*lit*` with a non-empty literal: `source[1..len - 1]`.
    Contains,
    /// `*` alone (or any run of stars).
    Any,
    /// Anything else.
    General,
}

impl Pattern {
    /// Compiles a pattern.
    #[must_use]
    pub fn new(pattern: &str) -> Self {
        let bytes = pattern.as_bytes();
        let stars = bytes.iter().filter(|&&b| b == b'*').count();
        let has_q = bytes.contains(&b'?');
        let n = bytes.len();
        let kind = if stars == 0 && !has_q {
            Kind::Exact
        } else if has_q {
            Kind::General
        } else if stars == n {
            Kind::Any
        } else if stars == 1 && bytes[n - 1] == b'*' {
            Kind::Prefix
        } else if stars == 1 && bytes[0] == b'*' {
            Kind::Suffix
        } else if stars == 2 && n > 2 && bytes[0] == b'*' && bytes[n - 1] == b'*' {
            Kind::Contains
        } else {
            Kind::General
        };
        Pattern {
            source: Arc::from(pattern),
            kind,
        }
    }

    /// Whether `text` matches this pattern.
    #[must_use]
    #[inline]
    pub fn matches(&self, text: &str) -> bool {
        let s = &*self.source;
        match self.kind {
            Kind::Exact => text == s,
            Kind::Prefix => text.starts_with(&s[..s.len() - 1]),
            Kind::Suffix => text.ends_with(&s[1..]),
            Kind::Contains => text.contains(&s[1..s.len() - 1]),
            Kind::Any => true,
            Kind::General => glob(text.as_bytes(), s.as_bytes()),
        }
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern has no wildcard (it matches one exact name).
    #[must_use]
    pub fn is_literal(&self) -> bool {
        self.kind == Kind::Exact
    }
}

impl From<&str> for Pattern {
    fn from(pattern: &str) -> Self {
        Pattern::new(pattern)
    }
}

impl From<String> for Pattern {
    fn from(pattern: String) -> Self {
        Pattern::new(&pattern)
    }
}

impl std::str::FromStr for Pattern {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Pattern::new(s))
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&&*self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Whether `text` matches `pattern`, without compiling it first.
///
/// Allocation-free; use [`Pattern`] when the same pattern is matched many times.
///
/// ```
/// assert!(ephemeral::pattern::matches("rate-limit:500ms", "rate-limit:*"));
/// assert!(ephemeral::pattern::matches("", "*"));
/// assert!(!ephemeral::pattern::matches("a", ""));
/// ```
#[must_use]
#[inline]
pub fn matches(text: &str, pattern: &str) -> bool {
    let (t, p) = (text.as_bytes(), pattern.as_bytes());
    let i = match p.first() {
        // Nothing literal to compare first.
        Some(b'*' | b'?') => 0,
        // One pass over the pattern's literal head, compared with the text as it is found.
        _ => match literal_head(t, p) {
            Head::Mismatch => return false,
            Head::Exhausted => return t.len() == p.len(),
            Head::Wildcard(i) => i,
        },
    };
    if p[i] == b'*' && i + 1 == p.len() {
        // `lit*`: the head already matched.
        return true;
    }
    // `p[..i]` is literal and equal to `t[..i]`, and `p[i]` is an ASCII wildcard, so `i` is a
    // character boundary of both.
    glob(&t[i..], &p[i..])
}

/// How the literal head of a pattern compares with the text.
enum Head {
    /// The head differs from the text (or the text ends inside it).
    Mismatch,
    /// The pattern has no wildcard and is a prefix of the text.
    Exhausted,
    /// The first wildcard is at this index and everything before it matched.
    Wildcard(usize),
}

/// Compares the pattern with the text up to the first `*` or `?`, eight bytes at a time.
#[inline]
fn literal_head(t: &[u8], p: &[u8]) -> Head {
    let mut i = 0;
    // Whole words of both.
    while i + 8 <= p.len() && i + 8 <= t.len() {
        if let Some(head) = word_head(t, p, i) {
            return head;
        }
        i += 8;
    }
    // A short tail: one last word ending where the pattern ends, overlapping bytes already
    // checked (they hold no wildcard and match, so checking them again changes nothing).
    if i < p.len() && p.len() >= 8 && t.len() >= p.len() {
        return word_head(t, p, p.len() - 8).unwrap_or(Head::Exhausted);
    }
    // Otherwise byte by byte.
    while i < p.len() {
        match p[i] {
            b'*' | b'?' => return Head::Wildcard(i),
            c if t.get(i) == Some(&c) => i += 1,
            _ => return Head::Mismatch,
        }
    }
    Head::Exhausted
}

/// Compares the eight bytes at `at` (both slices hold them): `None` when they hold no
/// wildcard and are equal, otherwise the outcome.
#[inline]
fn word_head(t: &[u8], p: &[u8], at: usize) -> Option<Head> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of the lowest zero byte of `v` is the lowest bit set (bytes above it may
    // show false positives, which never matter here).
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let word = |s: &[u8]| u64::from_le_bytes(s[at..at + 8].try_into().expect("eight bytes"));
    let (pw, tw) = (word(p), word(t));
    let wild =
        zero_bytes(pw ^ (ONES * u64::from(b'*'))) | zero_bytes(pw ^ (ONES * u64::from(b'?')));
    if wild == 0 {
        return (pw != tw).then_some(Head::Mismatch);
    }
    // Little-endian: the lowest bits are the first bytes.
    let k = (wild.trailing_zeros() / 8) as usize;
    let before = (1u64 << (8 * k)) - 1;
    Some(if (pw ^ tw) & before == 0 {
        Head::Wildcard(at + k)
    } else {
        Head::Mismatch
    })
}

/// Whether `text` matches any pattern of `patterns`, where each entry may be a comma-separated
/// list (tokens are trimmed; empty tokens and empty entries are skipped, so `"a,,b"` never
/// matches everything).
///
/// ```
/// use ephemeral::pattern::matches_any;
///
/// assert!(matches_any("rate-limit", ["timeout", " rate-limit , circuit-*"]));
/// assert!(!matches_any("anything", ["foo,,bar"]));
/// assert!(matches_any("anything", ["foo, * ,bar"]));
/// assert!(!matches_any("x", Vec::<String>::new()));
/// ```
#[must_use]
pub fn matches_any<I>(text: &str, patterns: I) -> bool
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    patterns
        .into_iter()
        .any(|entry| tokens(entry.as_ref()).any(|token| matches(text, token)))
}

/// The patterns of one entry that may hold a comma-separated list: each token trimmed, empty
/// tokens skipped (so `"a,,b"` is `a` and `b`, never an empty pattern). The one place a list
/// is split.
fn tokens(entry: &str) -> impl Iterator<Item = &str> {
    entry.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Width in bytes of the UTF-8 character that starts with `lead`.
#[inline]
fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Iterative glob with single-star backtracking: `O(text × pattern)` in the worst case, no
/// recursion, no allocation. Both inputs are valid UTF-8, and every position advances by whole
/// characters, so `?` always consumes exactly one character.
fn glob(text: &[u8], pat: &[u8]) -> bool {
    let (mut t, mut p) = (0usize, 0usize);
    // Where to resume after the last star: (pattern index after the star, text index).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    p += 1;
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    t += char_width(text[t]);
                    p += 1;
                    continue;
                }
                c if c == text[t] => {
                    t += 1;
                    p += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                let next = st + char_width(text[st]);
                star = Some((sp, next));
                p = sp;
                t = next;
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

/// A compiled list of patterns, built from entries that may hold comma-separated lists.
#[derive(Clone, Debug, Default)]
pub(crate) struct PatternSet {
    patterns: Vec<Pattern>,
}

impl PatternSet {
    pub(crate) fn from_entries<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<Pattern> = Vec::new();
        for entry in entries {
            for token in tokens(entry.as_ref()) {
                if !patterns.iter().any(|p| p.as_str() == token) {
                    patterns.push(Pattern::new(token));
                }
            }
        }
        PatternSet { patterns }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(text))
    }

    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Pattern> {
        self.patterns.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &str, pattern: &str) -> bool {
        let a = matches(text, pattern);
        let b = Pattern::new(pattern).matches(text);
        assert_eq!(
            a, b,
            "free fn and compiled pattern disagree on {text:?} ~ {pattern:?}"
        );
        a
    }

    #[test]
    fn literal_and_case_sensitive() {
        assert!(both("rate-limit", "rate-limit"));
        assert!(!both("Rate-limit", "rate-limit"));
        assert!(!both("rate-limit2", "rate-limit"));
        assert!(!both("a,b", "a"));
        assert!(both("a,b", "a,b"));
        assert!(both("[x]", "[x]"));
        assert!(!both("x", "[x]"));
        assert!(both(r"a\*", r"a\*"));
    }

    #[test]
    fn star_matches_empty_and_runs() {
        assert!(both("", "*"));
        assert!(both("abc", "*"));
        assert!(both("abc", "a*"));
        assert!(both("a", "a*"));
        assert!(both("abc", "*c"));
        assert!(both("abc", "*b*"));
        assert!(both("abc", "a*b*c"));
        assert!(both("ac", "a*c"));
        assert!(!both("ab", "a*c"));
        assert!(both("abcabc", "*abc"));
        assert!(both("xaxbxc", "*a*b*c"));
        assert!(!both("xaxcxb", "*a*b*c"));
        assert!(both("aaa", "**"));
    }

    #[test]
    fn question_mark_is_one_char() {
        assert!(both("a", "?"));
        assert!(!both("", "?"));
        assert!(!both("ab", "?"));
        assert!(both("é", "?"));
        assert!(both("日本", "??"));
        assert!(!both("日本", "?"));
        assert!(both("x日y", "x?y"));
        assert!(both("日本語", "*?"));
        assert!(both("日本語", "*語"));
    }

    #[test]
    fn empty_pattern_matches_only_empty() {
        assert!(both("", ""));
        assert!(!both("a", ""));
    }

    #[test]
    fn matches_any_splits_and_trims() {
        assert!(matches_any("b", ["a, b"]));
        assert!(matches_any("b", ["a", " b "]));
        assert!(!matches_any("", ["a,,b"]));
        assert!(!matches_any("", [""]));
        assert!(!matches_any("x", ["  "]));
        assert!(matches_any(
            "circuit-open",
            vec!["system-overload,circuit-*".to_string()]
        ));
    }

    #[test]
    fn pattern_set_dedups_and_splits() {
        let set = PatternSet::from_entries(["a, b*", "a", "", " , "]);
        assert_eq!(set.iter().count(), 2);
        assert!(set.matches("bee"));
        assert!(!set.matches("c"));
        assert!(PatternSet::from_entries(Vec::<String>::new()).is_empty());
    }
}

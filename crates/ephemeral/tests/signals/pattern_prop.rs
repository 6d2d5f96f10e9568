//! Glob patterns: `pattern::matches`, `Pattern::matches` and `pattern::matches_any` against a
//! tiny recursive reference implementation, plus the documented rules.

use ephemeral::pattern::{matches, matches_any};
use ephemeral::Pattern;
use proptest::prelude::*;

/// The reference: the grammar read literally, by recursion over characters.
fn reference(text: &[char], pattern: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| reference(&text[i..], rest)),
        Some(('?', rest)) => !text.is_empty() && reference(&text[1..], rest),
        Some((c, rest)) => text.first() == Some(c) && reference(&text[1..], rest),
    }
}

fn reference_str(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    reference(&t, &p)
}

fn string_of(alphabet: &'static [char], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(alphabet), 0..=max)
        .prop_map(|chars| chars.into_iter().collect())
}

const TEXT: &[char] = &['a', 'b', 'é', ',', ' ', '.', '*', '?'];
const PATTERN: &[char] = &['a', 'b', 'é', ',', '.', '*', '?', '*'];
const WIDE: &[char] = &['a', 'é', '日', '𝄞', '*', '?'];

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn free_fn_and_compiled_agree_with_the_reference(
        text in string_of(TEXT, 10),
        pattern in string_of(PATTERN, 8),
    ) {
        let expected = reference_str(&text, &pattern);
        prop_assert_eq!(matches(&text, &pattern), expected, "matches({:?}, {:?})", text, pattern);
        prop_assert_eq!(
            Pattern::new(&pattern).matches(&text), expected,
            "Pattern::new({:?}).matches({:?})", pattern, text
        );
    }

    #[test]
    fn multibyte_characters_are_single_characters(
        text in string_of(WIDE, 8),
        pattern in string_of(WIDE, 6),
    ) {
        let expected = reference_str(&text, &pattern);
        prop_assert_eq!(matches(&text, &pattern), expected, "matches({:?}, {:?})", text, pattern);
        prop_assert_eq!(Pattern::new(&pattern).matches(&text), expected);
    }

    /// Patterns built from a piece of the text: the matcher's special shapes (prefix, suffix,
    /// contains) get exercised with hits, not only misses.
    #[test]
    fn shaped_patterns_cut_from_the_text(
        text in string_of(TEXT, 24),
        a in 0usize..=24,
        b in 0usize..=24,
        shape in 0u8..6,
        flip in 0usize..24,
    ) {
        let chars: Vec<char> = text.chars().collect();
        let (lo, hi) = (a.min(b).min(chars.len()), a.max(b).min(chars.len()));
        let piece: String = chars[lo..hi].iter().collect();
        let pattern = match shape {
            0 => format!("{piece}*"),
            1 => format!("*{piece}"),
            2 => format!("*{piece}*"),
            // A long literal head then a wildcard, with one character maybe changed.
            3 => {
                let mut head: Vec<char> = chars[..lo].to_vec();
                if let Some(c) = head.get_mut(flip) {
                    *c = if *c == 'a' { 'b' } else { 'a' };
                }
                format!("{}?{piece}*", head.into_iter().collect::<String>())
            }
            4 => chars[..hi].iter().collect(),
            _ => piece,
        };
        let expected = reference_str(&text, &pattern);
        prop_assert_eq!(matches(&text, &pattern), expected, "matches({:?}, {:?})", text, pattern);
        prop_assert_eq!(Pattern::new(&pattern).matches(&text), expected);
    }

    #[test]
    fn matches_any_splits_trims_and_skips_empty_tokens(
        text in string_of(&['a', 'b', 'é'], 4),
        entries in prop::collection::vec(string_of(&['a', 'b', 'é', '*', '?', ',', ' '], 8), 0..4),
    ) {
        let expected = entries.iter().any(|entry| {
            entry
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .any(|token| reference_str(&text, token))
        });
        prop_assert_eq!(matches_any(&text, &entries), expected, "{:?} in {:?}", text, entries);
    }
}

fn both(text: &str, pattern: &str) -> bool {
    let free = matches(text, pattern);
    assert_eq!(
        free,
        Pattern::new(pattern).matches(text),
        "{text:?} ~ {pattern:?}"
    );
    assert_eq!(free, reference_str(text, pattern), "{text:?} ~ {pattern:?}");
    free
}

#[test]
fn literal_patterns_compare_exactly_and_case_sensitively() {
    assert!(both("rate-limit", "rate-limit"));
    assert!(!both("Rate-Limit", "rate-limit"));
    assert!(!both("rate-limit ", "rate-limit"));
    assert!(!both("rate", "rate-limit"));
    assert!(Pattern::new("rate-limit").is_literal());
    assert!(!Pattern::new("rate-*").is_literal());
    assert!(!Pattern::new("rate-?").is_literal());
    // Wildcards do not make the rest case-insensitive.
    assert!(!both("HTTP.error", "http.*"));
    assert!(!both("http.ERROR", "*.error"));
}

#[test]
fn star_matches_the_empty_run() {
    assert!(both("", "*"));
    assert!(both("ab", "ab*"));
    assert!(both("ab", "*ab"));
    assert!(both("ab", "a*b"));
    assert!(both("ab", "*a*b*"));
    assert!(!both("", "?"));
    assert!(!both("ab", "ab?"));
}

#[test]
fn there_are_no_escapes_or_classes() {
    assert!(both(r"a\b", r"a\b"));
    assert!(!both("a*", r"a\*x"));
    assert!(both(r"a\xyz", r"a\*"));
    assert!(both("[ab]", "[ab]"));
    assert!(!both("a", "[ab]"));
    assert!(both("a,b", "a,b"));
    assert!(!both("a", "a,b"));
    // `*` and `?` in the text are plain characters that wildcards can match.
    assert!(both("*", "?"));
    assert!(both("a?", "a?"));
    assert!(both("ab", "a?"));
}

#[test]
fn the_empty_pattern_matches_only_the_empty_string() {
    assert!(both("", ""));
    assert!(!both("a", ""));
    assert!(!both(" ", ""));
}

#[test]
fn matches_any_rules() {
    assert!(matches_any("b", ["a, b"]));
    assert!(matches_any("b", ["a", "  b  "]));
    assert!(matches_any("circuit-open", ["system-overload,circuit-*"]));
    assert!(matches_any("anything", ["foo, * ,bar"]));
    // Empty tokens and empty entries are skipped: they never match everything, nor "".
    assert!(!matches_any("anything", ["foo,,bar"]));
    assert!(!matches_any("", ["foo,,bar"]));
    assert!(!matches_any("", [""]));
    assert!(!matches_any("", [" , "]));
    assert!(!matches_any("x", Vec::<String>::new()));
    // Tokens are trimmed, but inner spaces are literal.
    assert!(matches_any("a b", [" a b "]));
    assert!(!matches_any("ab", [" a b "]));
    // Works with owned strings too.
    assert!(matches_any("é", vec!["x".to_string(), "?".to_string()]));
}

#[test]
fn pathological_patterns_finish() {
    let text = "a".repeat(64);
    assert!(!matches(&text, "*a*a*a*a*a*b"));
    assert!(!Pattern::new("*a*a*a*a*a*b").matches(&text));
    assert!(matches(&text, "*a*a*a*a*a*"));
    let long = "ab".repeat(500);
    assert!(!matches(&long, "*a*a*a*a*c*"));
}

//! Any text as a rule's `when`: `parse` returns an expression or an error
//! whose column lies in the text (1-based, in characters, one past the end
//! at most), and never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::rule_language::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    match parse(source) {
        Ok(expr) => assert!(!expr.terms().is_empty(), "{source:?}: {expr:?}"),
        Err(e) => {
            let chars = source.chars().count();
            assert!(
                (1..=chars + 1).contains(&e.column),
                "{source:?}: column {} of {chars} characters: {e}",
                e.column
            );
        }
    }
});

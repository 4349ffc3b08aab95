//! Any text as a pipeline file: `encode::parse_pipeline` (every encoder's
//! section read by its own kind) returns a config or an error naming the
//! file, and never panics.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match vigil::encode::parse_pipeline(text, path) {
        // What parse accepted, validation accepts too.
        Ok(mut config) => assert_eq!(config.validate(), Ok(()), "{text:?}"),
        Err(e) => assert!(e.to_string().contains("fuzz.toml"), "{e}"),
    }
});

//! `Location::parse` takes whatever a user or a script passes as the
//! repository: no input panics, and a parsed location prints as a string
//! that parses back to the same location.
#![no_main]

use hokan_repo::Location;
use libfuzzer_sys::fuzz_target;

use hokan_fuzz as _;

fuzz_target!(|s: &str| {
    if let Ok(loc) = Location::parse(s) {
        let shown = loc.to_string();
        assert_eq!(
            Location::parse(&shown).ok(),
            Some(loc),
            "{s:?} shown as {shown:?}"
        );
    }
});

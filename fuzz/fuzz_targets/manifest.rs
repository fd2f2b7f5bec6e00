//! Arbitrary bytes through `swell check`'s manifest parsing and every scaler's metadata
//! parsing (`swell_check::manifest::exercise`): nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    swell_check::manifest::exercise(data);
});

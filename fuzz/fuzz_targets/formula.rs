//! Arbitrary text as a `scalingModifiers.formula` over three triggers: compiling and
//! evaluating it must never panic, whatever it says (KEDA's limits bound both).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(formula) = swell_api::formula::compile(src, &["a", "b", "c"]) {
        let _ = formula.eval(&[Some(1.5), None, Some(-2.0)]);
    }
});

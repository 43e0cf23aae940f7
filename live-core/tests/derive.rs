//! Mistakes in `#[derive(Watch)]` and `#[derive(Assigns)]` are compile errors that point at
//! the field or attribute at fault.
//!
//! Every case here fails to compile on purpose: with no passing case, trybuild only checks
//! (`cargo check`) its copy of the dependency tree instead of building it, which makes a cold
//! run about three times cheaper. What the derives accept is `derive_ok.rs`, an ordinary test.

#[test]
fn derive_errors_point_at_the_field() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/watch_unknown_column.rs");
    t.compile_fail("tests/ui/watch_unknown_option.rs");
    t.compile_fail("tests/ui/watch_missing_table.rs");
    t.compile_fail("tests/ui/assigns_missing_key.rs");
    t.compile_fail("tests/ui/assigns_not_watch.rs");
    t.compile_fail("tests/ui/assigns_two_keys.rs");
    t.compile_fail("tests/ui/assigns_unknown_option.rs");
    t.compile_fail("tests/ui/assigns_scope_not_stated.rs");
    t.compile_fail("tests/ui/assigns_sync_hook_signature.rs");
}

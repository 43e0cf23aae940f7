//! Mistakes in `#[derive(Watch)]` and `#[derive(Assigns)]` are compile errors that point at
//! the field or attribute at fault.

#[test]
fn derive_errors_point_at_the_field() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/ok.rs");
    t.compile_fail("tests/ui/watch_unknown_column.rs");
    t.compile_fail("tests/ui/watch_unknown_option.rs");
    t.compile_fail("tests/ui/watch_missing_table.rs");
    t.compile_fail("tests/ui/assigns_missing_key.rs");
    t.compile_fail("tests/ui/assigns_not_watch.rs");
    t.compile_fail("tests/ui/assigns_two_keys.rs");
    t.compile_fail("tests/ui/assigns_unknown_option.rs");
    t.compile_fail("tests/ui/assigns_scope_not_stated.rs");
}

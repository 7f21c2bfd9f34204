//! The example push specification in docs/ is the seed's FileZilla push, and stays valid.

#[test]
fn the_documented_example_spec_is_the_filezilla_example() {
    let text = include_str!("../../../docs/examples/filezilla-push.json");
    let spec = ferry_sccm::spec::parse(text).unwrap();
    assert_eq!(spec, ferry_sccm::spec::filezilla_example());
}

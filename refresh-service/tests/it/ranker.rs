//! The ranking model against the scores ONNX Runtime's Python API computed for it.

use refresh_service::pipeline::rank::{FEATURES, Ranker};

#[derive(serde::Deserialize)]
struct Fixture {
    inputs: Vec<Vec<f32>>,
    scores: Vec<f32>,
}

#[test]
fn ranker_matches_the_models_expected_scores() {
    let settings = crate::helpers::settings("postgres://unused", "unused");
    let ranker = Ranker::load(&settings.ranker_model, &settings.ort_dylib_path).unwrap();
    let fixture: Fixture =
        serde_json::from_str(include_str!("../../models/offer_ranker.expected.json")).unwrap();
    let flat: Vec<f32> = fixture.inputs.iter().flatten().copied().collect();
    assert_eq!(flat.len(), fixture.scores.len() * FEATURES);
    let scores = ranker.score(&flat).unwrap();
    assert_eq!(scores.len(), fixture.scores.len());
    for (got, want) in scores.iter().zip(&fixture.scores) {
        assert!((got - want).abs() < 1e-6, "score {got} != expected {want}");
    }
}

#[test]
fn a_model_of_another_signature_is_refused_naming_the_variable() {
    let settings = crate::helpers::settings("postgres://unused", "unused");
    let not_a_model = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/offer_ranker.expected.json"
    );
    let err = Ranker::load(not_a_model.as_ref(), &settings.ort_dylib_path)
        .err()
        .unwrap();
    assert!(err.to_string().contains("RANKER_MODEL"), "{err}");
}

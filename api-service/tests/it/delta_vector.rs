//! The README's RFC 9842 test vector ("Delta downloads for app clients") checked against
//! the code, read out of README.md itself so neither drifts from the other: the
//! dictionary's SHA-256, its `Available-Dictionary` as the API's own parser reads it, and
//! the 40 bytes a delta made as refresh-service makes it starts with.

use crate::helpers::{available_dictionary, sha256_hex, undcz};

/// The README's RFC 9842 test vector ("Delta downloads for app clients"): the dictionary,
/// its SHA-256, its `Available-Dictionary` and the hex block of the 40 bytes every dcz
/// body made against it starts with, as the README prints them.
struct ReadmeVector {
    dictionary: Vec<u8>,
    sha256: String,
    available_dictionary: String,
    header: Vec<u8>,
}

/// Reads [`ReadmeVector`] out of the workspace's README.md. Lines may be wrapped anew:
/// white space is folded before anything is looked for.
fn readme_vector() -> ReadmeVector {
    const LEAD: &str = "Test vector (RFC 9842's):";
    const BLOCK: &str = "every dcz body made against it starts with these 40 bytes:";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let folded = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let find = |what: &str, from: usize| {
        folded[from..]
            .find(what)
            .map(|at| from + at)
            .unwrap_or_else(|| panic!("{} no longer has {what:?} where expected", path.display()))
    };
    let (lead, block) = (find(LEAD, 0), find(BLOCK, 0));
    assert!(lead < block, "the test vector's prose was reordered");
    // The prose names the dictionary (`\n` for its newline), its SHA-256 and its
    // `Available-Dictionary` in backticks, among other names.
    let spans: Vec<&str> = folded[lead..block].split('`').skip(1).step_by(2).collect();
    let span = |what: &str, wanted: fn(&str) -> bool| {
        let found = spans.iter().find(|s| wanted(s));
        found.map(|s| (*s).to_owned()).unwrap_or_else(|| {
            panic!("the README's test vector has no {what} in backticks: {spans:?}")
        })
    };
    let fence = find("```text", block) + "```text".len();
    let hex_block = &folded[fence..find("```", fence)];
    ReadmeVector {
        dictionary: span("dictionary", |s| s.ends_with("\\n"))
            .replace("\\n", "\n")
            .into_bytes(),
        sha256: span("SHA-256", |s| {
            s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
        }),
        available_dictionary: span("Available-Dictionary", |s| {
            s.len() > 2 && s.starts_with(':') && s.ends_with(':')
        }),
        header: hex_block
            .split_whitespace()
            .map(|byte| {
                u8::from_str_radix(byte, 16)
                    .unwrap_or_else(|_| panic!("{byte:?} in the README's hex block"))
            })
            .collect(),
    }
}

#[test]
fn the_readme_test_vector_is_what_the_api_reads_and_a_delta_starts_with() {
    let vector = readme_vector();
    let dictionary = &vector.dictionary[..];
    assert_eq!(
        dictionary, b"This is a test dictionary.\n",
        "RFC 9842's dictionary"
    );
    assert_eq!(
        vector.sha256,
        sha256_hex(dictionary),
        "the README's SHA-256"
    );
    assert_eq!(
        vector.available_dictionary,
        available_dictionary(dictionary),
        "the README's Available-Dictionary"
    );
    let mut headers = poem::http::HeaderMap::new();
    headers.insert(
        "available-dictionary",
        vector.available_dictionary.parse().unwrap(),
    );
    assert_eq!(
        api_service::request::negotiate::available_dictionary(&headers).map(|sha| sha.to_string()),
        Some(vector.sha256),
        "the API reads the README's Available-Dictionary as the dictionary's SHA-256"
    );
    let document = b"{\"version\":\"2-b\"}";
    let body = shared::delta::compress(dictionary, document).unwrap();
    assert_eq!(
        hex::encode(&body[..shared::delta::DCZ_HEADER_BYTES]),
        hex::encode(&vector.header),
        "the README's 40 bytes against the header of a delta made as refresh-service makes it"
    );
    assert_eq!(undcz(dictionary, &body), document);
}

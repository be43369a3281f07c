//! What makes a served body right: it decodes to the document of the version its ETag
//! names, with as many offers as it says, and its size and hash are the ones stored for
//! that version.

use std::io::Read;

use serde_json::Value;

use shared::snapshot::{Codec, SnapshotMeta};

pub(super) fn check_hash(
    meta: &SnapshotMeta,
    codec: Codec,
    bytes: u64,
    hash: &str,
) -> Result<(), String> {
    let (expected_bytes, expected_hash) = match codec {
        Codec::Gzip => (meta.gzip_bytes, &meta.gzip_hash),
        Codec::Zstd => (meta.zstd_bytes, &meta.zstd_hash),
        Codec::Identity => (meta.json_bytes, &meta.json_hash),
    };
    if (expected_bytes, expected_hash.as_str()) == (bytes, hash) {
        Ok(())
    } else {
        Err(format!(
            "{} body of {} ({bytes} bytes) does not match its metadata",
            codec.name(),
            meta.version
        ))
    }
}

/// Decodes the body and checks it is the document of the version its ETag names, with
/// as many offers as `X-Ofertas-Count` says. Returns the version.
pub(super) fn check_document(
    codec: Codec,
    etag: Option<String>,
    encoding: Option<String>,
    count: Option<String>,
    body: &[u8],
) -> Result<String, String> {
    let etag = etag.ok_or("a 200 without ETag")?;
    let suffix = format!("-{}\"", codec.name());
    let version = etag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix(&suffix))
        .ok_or_else(|| format!("ETag {etag} is not a {} ETag", codec.name()))?;
    if encoding.as_deref() != Some(codec.name()) {
        return Err(format!("asked for {}, got {encoding:?}", codec.name()));
    }
    let mut document = Vec::new();
    match codec {
        Codec::Zstd => zstd::stream::read::Decoder::new(body)
            .and_then(|mut d| d.read_to_end(&mut document))
            .map(drop),
        Codec::Gzip => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut document)
            .map(drop),
        Codec::Identity => {
            document.extend_from_slice(body);
            Ok(())
        }
    }
    .map_err(|e| format!("{} body of {version} does not decode: {e}", codec.name()))?;
    document_matches(&document, version, count.as_deref())?;
    Ok(version.to_owned())
}

pub(super) fn document_matches(
    document: &[u8],
    version: &str,
    count: Option<&str>,
) -> Result<(), String> {
    let doc: Value =
        serde_json::from_slice(document).map_err(|e| format!("document is not JSON: {e}"))?;
    if doc["version"] != version {
        return Err(format!(
            "document of version {} served as {version}",
            doc["version"]
        ));
    }
    let offers = doc["ofertas"].as_array().map_or(0, Vec::len) as u64;
    let counted = count.map(|c| c.parse::<u64>().ok());
    if doc["count"].as_u64() != Some(offers) || counted.is_some_and(|c| c != Some(offers)) {
        return Err(format!(
            "{version}: {offers} offers, count {}, X-Ofertas-Count {count:?}",
            doc["count"]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn document(version: &str, offers: usize) -> Vec<u8> {
        let ofertas: Vec<Value> = (0..offers)
            .map(|id| serde_json::json!({"id": id}))
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"version": version, "count": offers, "ofertas": ofertas}),
        )
        .unwrap()
    }

    fn check(etag: &str, body: &[u8], count: &str) -> Result<String, String> {
        check_document(
            Codec::Zstd,
            Some(etag.to_owned()),
            Some("zstd".to_owned()),
            Some(count.to_owned()),
            body,
        )
    }

    #[test]
    fn a_body_is_checked_against_the_version_and_count_its_headers_name() {
        let body = zstd::encode_all(&document("7-abc", 3)[..], 3).unwrap();
        assert_eq!(check("\"7-abc-zstd\"", &body, "3"), Ok("7-abc".to_owned()));
        assert!(
            check("\"8-def-zstd\"", &body, "3").is_err(),
            "another version"
        );
        assert!(
            check("\"7-abc-gzip\"", &body, "3").is_err(),
            "another encoding"
        );
        assert!(
            check("\"7-abc-zstd\"", &body, "4").is_err(),
            "another count"
        );
        assert!(
            check("\"7-abc-zstd\"", &body[..body.len() - 1], "3").is_err(),
            "cut"
        );
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&document("7-abc", 3)).unwrap();
        let gzip = gzip.finish().unwrap();
        let served = check_document(
            Codec::Gzip,
            Some("\"7-abc-gzip\"".to_owned()),
            Some("gzip".to_owned()),
            None,
            &gzip,
        );
        assert_eq!(served, Ok("7-abc".to_owned()));
    }
}

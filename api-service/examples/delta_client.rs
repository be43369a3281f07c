//! A reference client of `GET /api/v4/ofertasws` for app developers: it keeps the last
//! document on disk and downloads only what changed since (RFC 9842 delta downloads,
//! `Content-Encoding: dcz`). App HTTP stacks (OkHttp, URLSession, Cronet) do not speak
//! RFC 9842, so an app does these steps itself; the README's "Delta downloads for app
//! clients" walks through them.
//!
//! ```text
//! cargo run -p api-service --example delta_client -- \
//!     --url http://127.0.0.1:8000/api/v4/ofertasws --token "$TOKEN" --dir /tmp/ofertas
//! ```
//!
//! Each run prints one JSON line: what came back (`200`/`304`, the encoding), the bytes
//! transferred, the document's size, version and SHA-256.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use clap::Parser;
use sha2::{Digest, Sha256};

/// Fetches the ofertas snapshot, sending only what the server needs to send a delta.
#[derive(Debug, Parser)]
struct Args {
    /// The snapshot URL.
    #[arg(long, default_value = "http://127.0.0.1:8000/api/v4/ofertasws")]
    url: String,
    /// A bearer token (`api-service token`).
    #[arg(long, env = "TOKEN")]
    token: String,
    /// Where the last document and its ETag are kept.
    #[arg(long)]
    dir: PathBuf,
}

/// What the client keeps between runs: the last document (also the dictionary of the
/// next request) and the ETag it came with.
pub struct Kept {
    /// The identity JSON document, exactly as decoded.
    pub document: Vec<u8>,
    /// The ETag of the response that brought it.
    pub etag: String,
}

/// What one fetch did.
#[derive(Debug, serde::Serialize)]
pub struct Fetched {
    /// HTTP status: 200 (a new document) or 304 (the kept one is current).
    pub status: u16,
    /// `Content-Encoding` of the body (`dcz`, `zstd`, `gzip` or `identity`).
    pub encoding: String,
    /// Body bytes transferred.
    pub transferred_bytes: usize,
    /// Size of the document now kept.
    pub document_bytes: usize,
    /// Its `version` field.
    pub version: String,
    /// Its SHA-256 (lowercase hex): what the next `Available-Dictionary` names.
    pub sha256: String,
}

/// Step 1: the request. `Accept-Encoding` offers `dcz` first; with a kept document the
/// request names it in `Available-Dictionary` (`:` + base64 of its SHA-256 + `:`) and
/// revalidates it with `If-None-Match`.
fn request(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    kept: Option<&Kept>,
) -> reqwest::RequestBuilder {
    let mut request = client
        .get(url)
        .bearer_auth(token)
        .header("accept-encoding", "dcz, zstd, gzip");
    if let Some(kept) = kept {
        let sha = Sha256::digest(&kept.document);
        let dictionary = base64::engine::general_purpose::STANDARD.encode(sha);
        request = request
            .header("available-dictionary", format!(":{dictionary}:"))
            .header("if-none-match", &kept.etag);
    }
    request
}

/// Step 2: the body decoded by its `Content-Encoding`. A `dcz` body is 8 bytes of magic,
/// the SHA-256 of the dictionary it was made against (it must be the kept document), then
/// a zstd frame decoded with the kept document as its raw-content prefix.
pub fn decode(encoding: &str, body: &[u8], kept: Option<&Kept>) -> anyhow::Result<Vec<u8>> {
    const DCZ_MAGIC: [u8; 8] = [0x5E, 0x2A, 0x4D, 0x18, 0x20, 0x00, 0x00, 0x00];
    let mut document = Vec::new();
    match encoding {
        "dcz" => {
            let kept = kept.context("a dcz body, but no document is kept")?;
            ensure!(body.len() >= 40 && body[..8] == DCZ_MAGIC, "not a dcz body");
            let sha = Sha256::digest(&kept.document);
            ensure!(
                body[8..40] == sha[..],
                "the dcz body was made for another dictionary"
            );
            let mut decoder =
                zstd::stream::read::Decoder::with_ref_prefix(&body[40..], &kept.document)?;
            // RFC 9842 allows windows up to 128 MiB.
            decoder.window_log_max(27)?;
            decoder.read_to_end(&mut document)?;
        }
        "zstd" => {
            zstd::stream::read::Decoder::new(body)?.read_to_end(&mut document)?;
        }
        "gzip" => {
            flate2::read::GzDecoder::new(body).read_to_end(&mut document)?;
        }
        "identity" => document.extend_from_slice(body),
        other => bail!("unexpected Content-Encoding {other:?}"),
    }
    Ok(document)
}

/// Step 3: the document is checked before it replaces the kept one: it is JSON, its
/// `count` is the length of `ofertas` and the `X-Ofertas-Count` header, and its `version`
/// is the one the ETag names (every ETag of a snapshot starts with `"VERSION`).
pub fn verify(document: &[u8], etag: &str, count_header: Option<&str>) -> anyhow::Result<String> {
    let parsed: serde_json::Value =
        serde_json::from_slice(document).context("the document is not JSON")?;
    let version = parsed["version"].as_str().context("no version")?.to_owned();
    let count = parsed["count"].as_u64().context("no count")?;
    let listed = parsed["ofertas"].as_array().context("no ofertas")?.len() as u64;
    ensure!(count == listed, "count {count} but {listed} offers");
    if let Some(header) = count_header {
        ensure!(
            header.parse::<u64>().ok() == Some(count),
            "X-Ofertas-Count {header} but count {count}"
        );
    }
    let named = etag.trim_start_matches("W/").trim_start_matches('"');
    ensure!(
        named
            .strip_prefix(version.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['"', '-'])),
        "ETag {etag} is not of version {version}"
    );
    Ok(version)
}

/// One fetch: request, decode, verify, keep (written to a temporary file, then renamed,
/// so a crash never leaves half a document behind).
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    dir: &Path,
) -> anyhow::Result<Fetched> {
    let kept = load(dir)?;
    let response = request(client, url, token, kept.as_ref()).send().await?;
    let status = response.status().as_u16();
    if status == 304 {
        let kept = kept.context("304 without a kept document")?;
        let version = verify(&kept.document, &kept.etag, None)?;
        return Ok(Fetched {
            status,
            encoding: "identity".to_owned(),
            transferred_bytes: 0,
            document_bytes: kept.document.len(),
            version,
            sha256: hex::encode(Sha256::digest(&kept.document)),
        });
    }
    ensure!(
        status == 200,
        "HTTP {status}: {}",
        response.text().await.unwrap_or_default()
    );
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let encoding = header("content-encoding").unwrap_or_else(|| "identity".to_owned());
    let etag = header("etag").context("no ETag")?;
    let count = header("x-ofertas-count");
    let body = response.bytes().await?;
    let document = decode(&encoding, &body, kept.as_ref())?;
    let version = verify(&document, &etag, count.as_deref())?;
    store(dir, &document, &etag)?;
    Ok(Fetched {
        status,
        encoding,
        transferred_bytes: body.len(),
        document_bytes: document.len(),
        version,
        sha256: hex::encode(Sha256::digest(&document)),
    })
}

fn load(dir: &Path) -> anyhow::Result<Option<Kept>> {
    let (document, etag) = (dir.join("document.json"), dir.join("etag"));
    if !document.exists() || !etag.exists() {
        return Ok(None);
    }
    Ok(Some(Kept {
        document: std::fs::read(document)?,
        etag: std::fs::read_to_string(etag)?.trim().to_owned(),
    }))
}

fn store(dir: &Path, document: &[u8], etag: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, bytes) in [("document.json", document), ("etag", etag.as_bytes())] {
        let partial = dir.join(format!("{name}.partial"));
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, dir.join(name))?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::new();
    let fetched = fetch(&client, &args.url, &args.token, &args.dir).await?;
    println!("{}", serde_json::to_string(&fetched)?);
    Ok(())
}

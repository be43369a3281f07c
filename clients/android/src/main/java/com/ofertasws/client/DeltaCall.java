package com.ofertasws.client;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Locale;

import okhttp3.Interceptor;
import okhttp3.MediaType;
import okhttp3.Request;
import okhttp3.Response;
import okhttp3.ResponseBody;
import okio.Okio;

/**
 * One call of the snapshot URL, the README's "Delta downloads for app clients" steps:
 * ask with the kept document, decode the answer, check it, keep it, and answer the app
 * with the plain document; when the answer is unusable, one plain request replaces it.
 * Holds what the call did for its {@link Transfer}. Not shared between threads: each
 * call has its own.
 */
final class DeltaCall {
    private static final MediaType JSON = MediaType.parse("application/json");

    private final Interceptor.Chain chain;
    private final DocumentStore store;
    private final BodyDecoder decoder;
    private final String url;

    private int serverStatus;
    private String contentCoding;
    private long bodyBytes;
    private long documentBytes;
    private String version;
    private boolean dictionaryOffered;
    private String fallbackReason;
    private String droppedKeptReason;
    private String storeError;

    DeltaCall(Interceptor.Chain chain, DocumentStore store, BodyDecoder decoder) {
        this.chain = chain;
        this.store = store;
        this.decoder = decoder;
        this.url = chain.request().url().toString();
    }

    /**
     * The app's answer: the document as a 200, or the server's answer untouched when it
     * is neither 200 nor 304. Throws an {@link IOException} for a network failure, or
     * when the plain request that replaced an unusable answer is unusable too.
     */
    Response run() throws IOException {
        KeptDocument kept = loadKept();
        dictionaryOffered = kept != null;
        try {
            return answer(chain.proceed(firstRequest(kept)), kept);
        } catch (UnusableException e) {
            fallbackReason = e.getMessage();
        }
        try {
            return answer(chain.proceed(plainRequest()), null);
        } catch (UnusableException e) {
            throw new IOException("ofertasws: " + fallbackReason
                    + "; the plain download that replaced it is unusable too: " + e.getMessage(), e);
        }
    }

    /** What the call did; complete once {@link #run} has returned. */
    Transfer transfer() {
        return new Transfer(serverStatus, contentCoding, bodyBytes, documentBytes, version, dictionaryOffered,
                fallbackReason, droppedKeptReason, storeError);
    }

    /** The kept document, or null; one that is damaged or fails its checks is dropped. */
    private KeptDocument loadKept() {
        try {
            DocumentStore.Entry entry = store.load(url);
            return entry == null ? null : KeptDocument.checked(entry.document, entry.etag, null);
        } catch (UnusableException e) {
            store.drop();
            droppedKeptReason = e.getMessage();
            return null;
        }
    }

    /**
     * With a kept document: {@code dcz} offered, the document named as the dictionary and
     * revalidated by its ETag. Without one, dcz is not offered (as browsers do: there is
     * nothing it could be decoded against).
     */
    private Request firstRequest(KeptDocument kept) {
        Request.Builder request = withoutConditions();
        if (kept == null) {
            return request.header("Accept-Encoding", "zstd, gzip").build();
        }
        return request.header("Accept-Encoding", "dcz, zstd, gzip")
                .header("If-None-Match", kept.etag)
                .header("Available-Dictionary", kept.availableDictionary())
                .build();
    }

    /** The fallback: the whole document, nothing kept named. */
    private Request plainRequest() {
        return withoutConditions().header("Accept-Encoding", "zstd, gzip").build();
    }

    private Request.Builder withoutConditions() {
        return chain.request().newBuilder()
                .removeHeader("If-None-Match")
                .removeHeader("If-Modified-Since")
                .removeHeader("Available-Dictionary");
    }

    private Response answer(Response response, KeptDocument kept) throws IOException, UnusableException {
        switch (response.code()) {
            case 304:
                return revalidated(response, kept);
            case 200:
                return decoded(response, kept);
            default:
                serverStatus = response.code();
                return response;
        }
    }

    /** A 304 answered as OkHttp's cache does: the kept document, status 200. */
    private Response revalidated(Response response, KeptDocument kept) throws UnusableException {
        response.close();
        if (kept == null) {
            throw new UnusableException("a 304 came, but no kept document was named");
        }
        String etag = response.header("ETag");
        if (etag != null && !DocumentCheck.etagNames(etag, kept.version)) {
            throw new UnusableException("the 304's ETag " + etag + " does not name the kept version " + kept.version);
        }
        record(304, null, kept);
        return response.newBuilder()
                .code(200)
                .message("OK")
                .removeHeader("Content-Encoding")
                .removeHeader("Content-Length")
                .header("Content-Type", JSON.toString())
                .header("ETag", etag != null ? etag : kept.etag)
                .header("X-Ofertas-Count", Long.toString(kept.count))
                .body(body(JSON, kept.bytes))
                .build();
    }

    /** A 200: decoded, checked and kept; the app gets it without Content-Encoding. */
    private Response decoded(Response response, KeptDocument kept) throws IOException, UnusableException {
        String coding = coding(response.header("Content-Encoding"));
        ResponseBody body = response.body();
        MediaType type = body.contentType() != null ? body.contentType() : JSON;
        WireInputStream wire = new WireInputStream(body.byteStream());
        byte[] document;
        try {
            document = kept == null
                    ? decoder.decode(coding, wire, null, null)
                    : decoder.decode(coding, wire, kept.bytes, kept.sha256);
        } finally {
            bodyBytes += wire.bytes();
            body.close();
        }
        KeptDocument fresh = KeptDocument.checked(document, response.header("ETag"),
                response.header("X-Ofertas-Count"));
        try {
            store.save(url, fresh);
        } catch (IOException e) {
            storeError = e.toString();
        }
        record(200, coding == null ? "identity" : coding, fresh);
        return response.newBuilder()
                .removeHeader("Content-Encoding")
                .removeHeader("Content-Length")
                .body(body(type, document))
                .build();
    }

    /**
     * The document as the app's body, without a copy (a large document is already held
     * twice during a delta). {@code ResponseBody.create(MediaType, long, BufferedSource)}
     * is a Java static in OkHttp 3.x and (deprecated, at level WARNING) in 4.x and 5.x.
     */
    private static ResponseBody body(MediaType type, byte[] document) {
        return ResponseBody.create(type, document.length, Okio.buffer(Okio.source(new ByteArrayInputStream(document))));
    }

    private void record(int status, String coding, KeptDocument document) {
        serverStatus = status;
        contentCoding = coding;
        documentBytes = document.bytes.length;
        version = document.version;
    }

    /** The content-coding, lowercase; null for identity (absent, empty or "identity"). */
    private static String coding(String header) {
        if (header == null) {
            return null;
        }
        String coding = header.trim().toLowerCase(Locale.ROOT);
        return coding.isEmpty() || coding.equals("identity") ? null : coding;
    }
}

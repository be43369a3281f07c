package com.ofertasws.client;

/**
 * The checks a document passes before the client keeps it or hands it to the app: it is
 * JSON, its {@code count} equals the number of {@code ofertas} and the
 * {@code X-Ofertas-Count} header, and the ETag it came with names its {@code version}.
 * A delta decoded against the wrong dictionary, or a body of another snapshot, fails here
 * instead of becoming the next request's dictionary.
 */
final class DocumentCheck {
    private DocumentCheck() {
    }

    /**
     * Checks a document with the ETag and {@code X-Ofertas-Count} (null when absent) it
     * came with; returns its facts.
     */
    static JsonScanner.Facts verify(byte[] document, String etag, String countHeader) throws UnusableException {
        JsonScanner.Facts facts = JsonScanner.scan(document);
        if (facts.count != facts.offers) {
            throw new UnusableException("\"count\" is " + facts.count + " but \"ofertas\" holds " + facts.offers);
        }
        if (countHeader != null && !countHeader.trim().equals(Long.toString(facts.count))) {
            throw new UnusableException("X-Ofertas-Count is " + countHeader + " but \"count\" is " + facts.count);
        }
        if (etag == null) {
            throw new UnusableException("no ETag came with the document");
        }
        if (!etagNames(etag, facts.version)) {
            throw new UnusableException("ETag " + etag + " does not name version " + facts.version);
        }
        return facts;
    }

    /**
     * Whether an ETag names a version. Every ETag of a snapshot starts with
     * {@code "VERSION} followed by the closing quote or a {@code -} (as in
     * {@code "VERSION-zstd"} or {@code "VERSION-dcz-BASE"}), strong or weak ({@code W/}).
     */
    static boolean etagNames(String etag, String version) {
        String tag = etag.trim();
        if (tag.startsWith("W/")) {
            tag = tag.substring(2);
        }
        if (version.isEmpty() || !tag.startsWith("\"" + version)) {
            return false;
        }
        int after = 1 + version.length();
        return after < tag.length() && (tag.charAt(after) == '"' || tag.charAt(after) == '-');
    }
}

package com.ofertasws.client;

/**
 * What one call of {@code GET /api/v4/ofertasws} transferred, reported to a
 * {@link TransferListener} so that an app can show (or log) the bytes deltas save: the
 * app itself only ever sees a plain 200 with the JSON document.
 *
 * <p>Immutable. Getter names follow the JavaBeans style so Kotlin reads them as
 * properties ({@code transfer.bodyBytes}).
 */
public final class Transfer {
    private final int serverStatus;
    private final String contentCoding;
    private final long bodyBytes;
    private final long documentBytes;
    private final String version;
    private final boolean dictionaryOffered;
    private final String fallbackReason;
    private final String droppedKeptReason;
    private final String storeError;

    Transfer(int serverStatus, String contentCoding, long bodyBytes, long documentBytes, String version,
            boolean dictionaryOffered, String fallbackReason, String droppedKeptReason, String storeError) {
        this.serverStatus = serverStatus;
        this.contentCoding = contentCoding;
        this.bodyBytes = bodyBytes;
        this.documentBytes = documentBytes;
        this.version = version;
        this.dictionaryOffered = dictionaryOffered;
        this.fallbackReason = fallbackReason;
        this.droppedKeptReason = droppedKeptReason;
        this.storeError = storeError;
    }

    /**
     * The status of the server's last answer: 200 (a new document), 304 (the kept one is
     * current; the app got it as a 200), or any other status, which reached the app
     * untouched.
     */
    public int getServerStatus() {
        return serverStatus;
    }

    /**
     * The {@code Content-Encoding} of the server's last 200 — {@code dcz} (a delta),
     * {@code zstd}, {@code gzip} or {@code identity} — or null when it sent no body to
     * decode (a 304, or a status passed through).
     */
    public String getContentCoding() {
        return contentCoding;
    }

    /**
     * Response body bytes read from the network by this call, as sent (compressed),
     * including those of a first answer that was discarded for the fallback. Headers and
     * transfer framing are not counted.
     */
    public long getBodyBytes() {
        return bodyBytes;
    }

    /** Size of the JSON document the app got (0 when a status was passed through). */
    public long getDocumentBytes() {
        return documentBytes;
    }

    /** The {@code version} of the document the app got, or null when it got none. */
    public String getVersion() {
        return version;
    }

    /** Whether the first request named a kept document in {@code Available-Dictionary}. */
    public boolean isDictionaryOffered() {
        return dictionaryOffered;
    }

    /** Whether the first answer was unusable and one plain request replaced it. */
    public boolean isFallback() {
        return fallbackReason != null;
    }

    /** Why the first answer was unusable (for logs), or null when there was no fallback. */
    public String getFallbackReason() {
        return fallbackReason;
    }

    /**
     * Why the kept document was found damaged and deleted before the request (so none was
     * offered), or null.
     */
    public String getDroppedKeptReason() {
        return droppedKeptReason;
    }

    /**
     * Why the new document could not be kept (a full disk, say), or null. The app still
     * got it; the next call downloads it whole again.
     */
    public String getStoreError() {
        return storeError;
    }

    @Override
    public String toString() {
        return "Transfer{status=" + serverStatus + ", coding=" + contentCoding + ", bodyBytes=" + bodyBytes
                + ", documentBytes=" + documentBytes + ", version=" + version
                + ", dictionaryOffered=" + dictionaryOffered
                + (fallbackReason == null ? "" : ", fallback=" + fallbackReason)
                + (droppedKeptReason == null ? "" : ", droppedKept=" + droppedKeptReason)
                + (storeError == null ? "" : ", storeError=" + storeError) + "}";
    }
}

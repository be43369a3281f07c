package com.ofertasws.client;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

import okio.ByteString;

/**
 * A checked snapshot document and the ETag it came with: what the client keeps between
 * calls, what it answers a 304 with, and the dictionary its next request names. Built
 * only from a document that passed {@link DocumentCheck}.
 */
final class KeptDocument {
    final byte[] bytes;
    final String etag;
    final String version;
    final long count;
    /** The document's SHA-256: the dictionary's name in requests and dcz headers. */
    final byte[] sha256;

    private KeptDocument(byte[] bytes, String etag, String version, long count, byte[] sha256) {
        this.bytes = bytes;
        this.etag = etag;
        this.version = version;
        this.count = count;
        this.sha256 = sha256;
    }

    /** Checks a document with its ETag and {@code X-Ofertas-Count} (null when absent). */
    static KeptDocument checked(byte[] bytes, String etag, String countHeader) throws UnusableException {
        JsonScanner.Facts facts = DocumentCheck.verify(bytes, etag, countHeader);
        return new KeptDocument(bytes, etag, facts.version, facts.count, sha256(bytes));
    }

    /** The lowercase hex SHA-256, as the server's {@code /meta} shows it. */
    String sha256Hex() {
        return ByteString.of(sha256).hex();
    }

    /**
     * The {@code Available-Dictionary} value naming this document: an RFC 8941 byte
     * sequence, {@code :} + standard base64 (padded) of its SHA-256 + {@code :}.
     */
    String availableDictionary() {
        return availableDictionary(sha256);
    }

    static String availableDictionary(byte[] sha256) {
        return ":" + ByteString.of(sha256).base64() + ":";
    }

    static byte[] sha256(byte[] bytes) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(bytes);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java and Android runtime provides SHA-256", e);
        }
    }
}

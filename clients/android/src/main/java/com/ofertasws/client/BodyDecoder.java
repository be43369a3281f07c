package com.ofertasws.client;

import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;

import com.github.luben.zstd.ZstdInputStreamNoFinalizer;

/**
 * Decodes a response body by its {@code Content-Encoding} — {@code dcz} (RFC 9842),
 * {@code zstd}, {@code gzip} or identity — as it streams in, into a document of at most
 * a fixed number of bytes.
 *
 * <p>Two kinds of failure are kept apart, because they call for different outcomes: an
 * {@link IOException} from the network (the connection broke) reaches the caller as it
 * is, for the app to retry like any failed call; a body that does not decode is an
 * {@link UnusableException}, which a plain full download fixes.
 */
final class BodyDecoder {
    /** RFC 9842 §5: the 8 bytes of a zstd skippable frame header opening a dcz body. */
    static final byte[] DCZ_MAGIC = {0x5e, 0x2a, 0x4d, 0x18, 0x20, 0x00, 0x00, 0x00};
    /** The magic, then the SHA-256 of the dictionary the delta was made against. */
    static final int DCZ_HEADER_BYTES = 40;
    /** RFC 9842 §5: a client need not accept zstd windows over 128 MiB (window log 27). */
    static final int WINDOW_LOG_MAX = 27;

    private static final int FIRST_CAPACITY = 256 << 10;

    private final long maxDocumentBytes;

    BodyDecoder(long maxDocumentBytes) {
        this.maxDocumentBytes = maxDocumentBytes;
    }

    /**
     * Decodes {@code wire}, a body in {@code coding} ({@code null} for identity); a dcz
     * body is decoded against {@code dictionary}, whose SHA-256 is {@code dictionarySha256}
     * (both null when no document is kept, which makes a dcz body unusable). Reads the body
     * to its end: trailing bytes after the encoded document are unusable too.
     */
    byte[] decode(String coding, WireInputStream wire, byte[] dictionary, byte[] dictionarySha256)
            throws IOException, UnusableException {
        try {
            InputStream decoded = decoding(coding, wire, dictionary, dictionarySha256);
            try {
                // A new version is about the size of the kept one: room for it to grow by an
                // eighth spares a doubling of the buffer (and its peak memory).
                int capacity = dictionary == null ? FIRST_CAPACITY : dictionary.length + dictionary.length / 8;
                byte[] document = readBounded(decoded, capacity);
                if (document.length == 0) {
                    // Also a zstd body without a frame, which zstd streams read as empty.
                    throw new UnusableException("the " + name(coding) + " body decodes to nothing");
                }
                if (wire.read() != -1) {
                    throw new UnusableException("bytes after the end of the " + name(coding) + " body");
                }
                return document;
            } finally {
                // Frees the zstd context's native memory (the NoFinalizer streams have no
                // finalizer to do it) and closes the body.
                decoded.close();
            }
        } catch (WireInputStream.WireException e) {
            throw e.getCause();
        } catch (IOException | RuntimeException e) {
            // zstd-jni reports a corrupt frame as ZstdIOException or (from some entry
            // points) the unchecked ZstdException; GZIPInputStream as ZipException or
            // EOFException. None of them is the network's fault.
            throw new UnusableException("the " + name(coding) + " body does not decode: " + e, e);
        }
    }

    private InputStream decoding(String coding, WireInputStream wire, byte[] dictionary, byte[] dictionarySha256)
            throws IOException, UnusableException {
        if (coding == null) {
            return wire;
        }
        switch (coding) {
            case "dcz":
                if (dictionary == null) {
                    throw new UnusableException("a dcz body came, but no document is kept");
                }
                checkDczHeader(wire, dictionarySha256);
                return new ZstdInputStreamNoFinalizer(wire).setDict(dictionary).setLongMax(WINDOW_LOG_MAX);
            case "zstd":
                return new ZstdInputStreamNoFinalizer(wire).setLongMax(WINDOW_LOG_MAX);
            case "gzip":
                return new GZIPInputStream(wire);
            default:
                throw new UnusableException("unexpected Content-Encoding " + coding);
        }
    }

    /**
     * RFC 9842 §5: the magic, then the SHA-256 of the dictionary. zstd decoders skip the
     * header as a skippable frame, so the hash is checked here: a delta made against
     * another document would otherwise decode to garbage.
     */
    private static void checkDczHeader(InputStream wire, byte[] dictionarySha256)
            throws IOException, UnusableException {
        byte[] header = new byte[DCZ_HEADER_BYTES];
        int read = 0;
        while (read < header.length) {
            int n = wire.read(header, read, header.length - read);
            if (n < 0) {
                throw new UnusableException("the dcz body is shorter than its " + DCZ_HEADER_BYTES + "-byte header");
            }
            read += n;
        }
        if (!Arrays.equals(Arrays.copyOf(header, DCZ_MAGIC.length), DCZ_MAGIC)) {
            throw new UnusableException("the dcz body does not start with the RFC 9842 magic");
        }
        byte[] named = Arrays.copyOfRange(header, DCZ_MAGIC.length, DCZ_HEADER_BYTES);
        if (!MessageDigest.isEqual(named, dictionarySha256)) {
            throw new UnusableException("the dcz body was made against another dictionary than the kept document");
        }
    }

    private byte[] readBounded(InputStream in, int capacityHint) throws IOException, UnusableException {
        byte[] buffer = new byte[(int) Math.min(Math.max(capacityHint, 1024), maxDocumentBytes + 1)];
        int length = 0;
        while (true) {
            if (length == buffer.length) {
                if (length > maxDocumentBytes) {
                    throw new UnusableException("the document is larger than " + maxDocumentBytes + " bytes");
                }
                long grown = Math.min((long) buffer.length * 2, maxDocumentBytes + 1);
                buffer = Arrays.copyOf(buffer, (int) grown);
            }
            int n = in.read(buffer, length, buffer.length - length);
            if (n < 0) {
                return Arrays.copyOf(buffer, length);
            }
            length += n;
        }
    }

    private static String name(String coding) {
        return coding == null ? "identity" : coding;
    }
}

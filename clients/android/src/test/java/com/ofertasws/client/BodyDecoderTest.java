package com.ofertasws.client;

import static com.ofertasws.client.Fixtures.utf8;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;

import org.junit.jupiter.api.Test;

class BodyDecoderTest {
    private static final byte[] OLD = Fixtures.snapshot("V1", 400, 0);
    private static final byte[] NEW = Fixtures.snapshot("V2", 400, 20);
    private static final byte[] OLD_SHA = KeptDocument.sha256(OLD);

    private final BodyDecoder decoder = new BodyDecoder(OfertasDeltaInterceptor.MAX_DOCUMENT_BYTES);

    /** RFC 9842's test dictionary and what the RFC derives from it. */
    private static final byte[] RFC_DICTIONARY = utf8("This is a test dictionary.\n");
    private static final String RFC_AVAILABLE_DICTIONARY = ":U5abz16WDg7b8KS93msLPpOB4Vbef1uRzoORYkJw9BY=:";
    private static final byte[] RFC_DCZ_HEADER = hex(
            "5e2a4d1820000000" + "53969bcf5e960e0edbf0a4bdde6b0b3e9381e156de7f5b91ce8391624270f416");

    @Test
    void rfc9842TestVector() throws Exception {
        assertEquals(27, RFC_DICTIONARY.length);
        byte[] sha = KeptDocument.sha256(RFC_DICTIONARY);
        assertEquals(RFC_AVAILABLE_DICTIONARY, KeptDocument.availableDictionary(sha));
        assertArrayEquals(RFC_DCZ_HEADER, Fixtures.dczHeader(sha));
        // A body opening with the RFC's own 40 bytes decodes against the RFC dictionary.
        byte[] text = utf8("This is a test dictionary.\nThis is a test of dcz.\n");
        byte[] made = Fixtures.dcz(RFC_DICTIONARY, text);
        byte[] frame = Arrays.copyOfRange(made, 40, made.length);
        byte[] body = Fixtures.concat(RFC_DCZ_HEADER, frame);
        assertArrayEquals(text, decode("dcz", body, RFC_DICTIONARY, sha));
    }

    @Test
    void decodesADeltaMadeByTheZstdCli() throws Exception {
        byte[] body = Fixtures.dcz(OLD, NEW);
        assertTrue(body.length < NEW.length / 10, "a delta of a few changed offers is small: " + body.length);
        assertArrayEquals(NEW, decode("dcz", body, OLD, OLD_SHA));
    }

    @Test
    void decodesADeltaOfADocumentOver8MiB() throws Exception {
        // Over 8 MiB the frame's window exceeds zstd's default streaming limit of 2^23 for
        // some decoders; RFC 9842 allows up to 2^27, and so must the client.
        byte[] old = Fixtures.snapshot("BIG1", 40_000, 0);
        byte[] fresh = Fixtures.snapshot("BIG2", 40_000, 500);
        assertTrue(fresh.length > 8 << 20, "size " + fresh.length);
        byte[] body = Fixtures.dcz(old, fresh, "-3");
        assertArrayEquals(fresh, decode("dcz", body, old, KeptDocument.sha256(old)));
    }

    @Test
    void decodesZstdGzipAndIdentity() throws Exception {
        assertArrayEquals(NEW, decode("zstd", Fixtures.zstd(NEW), null, null));
        assertArrayEquals(NEW, decode("gzip", Fixtures.gzip(NEW), null, null));
        assertArrayEquals(NEW, decode(null, NEW, null, null));
        assertArrayEquals(NEW, decode("zstd", Fixtures.zstd(NEW), OLD, OLD_SHA));
    }

    @Test
    void aDczBodyWithoutItsMagicIsUnusable() throws Exception {
        byte[] body = Fixtures.flip(Fixtures.dcz(OLD, NEW), 3);
        assertUnusable("magic", "dcz", body, OLD, OLD_SHA);
    }

    @Test
    void aDczBodyMadeAgainstAnotherDictionaryIsUnusable() throws Exception {
        byte[] body = Fixtures.flip(Fixtures.dcz(OLD, NEW), 20);
        assertUnusable("another dictionary", "dcz", body, OLD, OLD_SHA);
        byte[] other = Fixtures.snapshot("V0", 400, 3);
        assertUnusable("another dictionary", "dcz", Fixtures.dcz(other, NEW), OLD, OLD_SHA);
    }

    @Test
    void aShortOrCorruptDczBodyIsUnusable() throws Exception {
        byte[] body = Fixtures.dcz(OLD, NEW);
        assertUnusable("shorter", "dcz", Arrays.copyOf(body, 39), OLD, OLD_SHA);
        assertUnusable("decodes to nothing", "dcz", Arrays.copyOf(body, 40), OLD, OLD_SHA);
        assertUnusable("does not decode", "dcz", Arrays.copyOf(body, body.length - 1), OLD, OLD_SHA);
        assertUnusable("does not decode", "dcz", Fixtures.flip(body, 40), OLD, OLD_SHA);
        // A flipped byte inside the frame: the frame's checksum (or its structure) catches it.
        for (int at = 48; at < body.length; at += Math.max(1, body.length / 40)) {
            assertUnusable("", "dcz", Fixtures.flip(body, at), OLD, OLD_SHA);
        }
    }

    @Test
    void aDczBodyWithNothingKeptIsUnusable() throws Exception {
        assertUnusable("no document is kept", "dcz", Fixtures.dcz(OLD, NEW), null, null);
    }

    @Test
    void aWindowOverRfc9842sLimitIsRefused() throws Exception {
        byte[] frame = Fixtures.zstdWindow28(NEW);
        assertUnusable("does not decode", "zstd", frame, null, null);
        assertUnusable("does not decode", "dcz", Fixtures.concat(Fixtures.dczHeader(OLD_SHA), frame), OLD, OLD_SHA);
    }

    @Test
    void badBodiesOfEveryCodingAreUnusable() throws Exception {
        assertUnusable("does not decode", "gzip", NEW, null, null);
        assertUnusable("does not decode", "zstd", NEW, null, null);
        assertUnusable("unexpected Content-Encoding br", "br", NEW, null, null);
        assertUnusable("does not decode", "zstd", Fixtures.concat(Fixtures.zstd(NEW), utf8("junk")), null, null);
        assertUnusable("bytes after", "gzip", Fixtures.concat(Fixtures.gzip(NEW), utf8("junk")), null, null);
        assertUnusable("decodes to nothing", null, new byte[0], null, null);
        assertUnusable("does not decode", "gzip", Arrays.copyOf(Fixtures.gzip(NEW), 100), null, null);
    }

    @Test
    void theDocumentSizeIsBounded() throws Exception {
        BodyDecoder small = new BodyDecoder(NEW.length - 1);
        UnusableException e = assertThrows(UnusableException.class,
                () -> small.decode("zstd", new WireInputStream(new ByteArrayInputStream(Fixtures.zstd(NEW))), null, null));
        assertTrue(e.getMessage().contains("larger than"), e.getMessage());
        BodyDecoder exact = new BodyDecoder(NEW.length);
        assertArrayEquals(NEW, exact.decode(null, new WireInputStream(new ByteArrayInputStream(NEW)), null, null));
    }

    @Test
    void aNetworkFailureIsNotMistakenForABadBody() throws Exception {
        byte[] body = Fixtures.dcz(OLD, NEW);
        IOException broken = new IOException("connection reset");
        InputStream failing = new InputStream() {
            private int served;

            @Override
            public int read() throws IOException {
                if (served == 60) {
                    throw broken;
                }
                return body[served++] & 0xff;
            }
        };
        IOException thrown = assertThrows(IOException.class,
                () -> decoder.decode("dcz", new WireInputStream(failing), OLD, OLD_SHA));
        assertSame(broken, thrown);
    }

    @Test
    void countsTheBytesReadFromTheWire() throws Exception {
        byte[] body = Fixtures.dcz(OLD, NEW);
        WireInputStream wire = new WireInputStream(new ByteArrayInputStream(body));
        decoder.decode("dcz", wire, OLD, OLD_SHA);
        assertEquals(body.length, wire.bytes());
    }

    private byte[] decode(String coding, byte[] body, byte[] dictionary, byte[] sha) throws Exception {
        return decoder.decode(coding, new WireInputStream(new ByteArrayInputStream(body)), dictionary, sha);
    }

    private void assertUnusable(String reason, String coding, byte[] body, byte[] dictionary, byte[] sha) {
        UnusableException e = assertThrows(UnusableException.class, () -> decode(coding, body, dictionary, sha));
        assertTrue(e.getMessage().contains(reason), e.getMessage());
    }

    private static byte[] hex(String hex) {
        byte[] out = new byte[hex.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }
}

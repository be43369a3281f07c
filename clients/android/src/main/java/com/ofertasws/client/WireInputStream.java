package com.ofertasws.client;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;

/**
 * A response body as it comes off the network: counts the bytes read (what the call
 * transferred) and marks every {@link IOException} it throws as the network's, so that
 * {@link BodyDecoder} can tell a broken connection from a body that does not decode even
 * when the exception comes up through a decompressor.
 */
final class WireInputStream extends FilterInputStream {
    private long bytes;

    WireInputStream(InputStream body) {
        super(body);
    }

    /** Body bytes read so far. */
    long bytes() {
        return bytes;
    }

    @Override
    public int read() throws IOException {
        byte[] one = new byte[1];
        int n = read(one, 0, 1);
        return n < 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] buffer, int offset, int length) throws IOException {
        int n;
        try {
            n = super.read(buffer, offset, length);
        } catch (IOException e) {
            throw new WireException(e);
        }
        if (n > 0) {
            bytes += n;
        }
        return n;
    }

    @Override
    public long skip(long n) throws IOException {
        byte[] discard = new byte[(int) Math.min(n, 8192)];
        int read = read(discard, 0, discard.length);
        return Math.max(read, 0);
    }

    /** An I/O failure of the network, carried unchanged through the decoders. */
    static final class WireException extends IOException {
        private static final long serialVersionUID = 1L;

        WireException(IOException cause) {
            super(cause);
        }

        @Override
        public synchronized IOException getCause() {
            return (IOException) super.getCause();
        }
    }
}

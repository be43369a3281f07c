package com.ofertasws.client;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;

import okio.ByteString;

/**
 * Keeps the last document, its ETag and the URL it came from in one file of a directory
 * the app gives, so that the pair (document, ETag) can never be torn apart.
 *
 * <p>The file is a small text header followed by the document:
 * <pre>
 * ofertasws-kept 1
 * url http://host/api/v4/ofertasws
 * etag "VERSION-zstd"
 * sha256 &lt;64 lowercase hex digits&gt;
 * length &lt;document bytes&gt;
 * (empty line)
 * &lt;document&gt;
 * </pre>
 * It is written whole to a new temporary file, synced, then renamed over the old one: a
 * killed app leaves either the old file or the new one (and perhaps a temporary file,
 * which is never read and is removed by the next save). A file whose header, length or
 * SHA-256 does not match is reported as damaged and deleted, so it is never sent as a
 * dictionary. Only {@code java.io} is used: {@code java.nio.file} needs Android 8.
 *
 * <p>Loads and saves of one store are serialised; two stores (two interceptors, or two
 * processes) must not share a directory.
 */
final class DocumentStore {
    static final String FILE_NAME = "ofertasws-kept.bin";
    private static final String TEMPORARY_SUFFIX = ".partial";
    private static final String MAGIC = "ofertasws-kept 1";
    /** Bound on the header: a longer one is damage, not a header. */
    private static final int MAX_HEADER_BYTES = 16 << 10;
    private static final Charset UTF_8 = Charset.forName("UTF-8");

    private final File directory;
    private final File file;
    private final long maxDocumentBytes;

    DocumentStore(File directory, long maxDocumentBytes) {
        this.directory = directory;
        this.file = new File(directory, FILE_NAME);
        this.maxDocumentBytes = maxDocumentBytes;
    }

    /** A kept document and its ETag, read back and found intact. */
    static final class Entry {
        final byte[] document;
        final String etag;

        Entry(byte[] document, String etag) {
            this.document = document;
            this.etag = etag;
        }
    }

    /**
     * The document kept for {@code url}, or null when none is (or the one kept came from
     * another URL). A damaged file is deleted and reported as an {@link UnusableException}.
     */
    synchronized Entry load(String url) throws UnusableException {
        if (!file.isFile()) {
            return null;
        }
        try {
            InputStream in = new BufferedInputStream(new FileInputStream(file));
            try {
                String[] lines = new String(header(in), UTF_8).split("\n", -1);
                if (lines.length != 6 || !MAGIC.equals(lines[0]) || !lines[5].isEmpty()) {
                    throw new UnusableException("the kept file has no valid header");
                }
                String keptUrl = field(lines[1], "url");
                String etag = field(lines[2], "etag");
                String sha256 = field(lines[3], "sha256");
                byte[] document = new byte[length(field(lines[4], "length"))];
                if (readFully(in, document) != document.length || in.read() != -1) {
                    throw new UnusableException("the kept document is not as long as its header says");
                }
                if (!ByteString.of(KeptDocument.sha256(document)).hex().equals(sha256)) {
                    throw new UnusableException("the kept document does not match its SHA-256");
                }
                return keptUrl.equals(url) ? new Entry(document, etag) : null;
            } finally {
                in.close();
            }
        } catch (IOException e) {
            drop();
            throw new UnusableException("the kept file cannot be read: " + e, e);
        } catch (UnusableException e) {
            drop();
            throw e;
        }
    }

    /** Replaces the kept document (written to a new file, then renamed over the old). */
    synchronized void save(String url, KeptDocument kept) throws IOException {
        if (!directory.isDirectory() && !directory.mkdirs()) {
            throw new IOException("cannot create " + directory);
        }
        removeTemporaryFiles();
        String header = MAGIC + "\n"
                + "url " + singleLine(url) + "\n"
                + "etag " + singleLine(kept.etag) + "\n"
                + "sha256 " + kept.sha256Hex() + "\n"
                + "length " + kept.bytes.length + "\n"
                + "\n";
        File temporary = File.createTempFile("kept-", TEMPORARY_SUFFIX, directory);
        boolean renamed = false;
        try {
            FileOutputStream out = new FileOutputStream(temporary);
            try {
                out.write(header.getBytes(UTF_8));
                out.write(kept.bytes);
                out.getFD().sync();
            } finally {
                out.close();
            }
            if (!temporary.renameTo(file)) {
                throw new IOException("cannot rename " + temporary + " to " + file);
            }
            renamed = true;
        } finally {
            if (!renamed && !temporary.delete()) {
                temporary.deleteOnExit();
            }
        }
    }

    /** Forgets the kept document (best effort: a file that stays is checked on load). */
    synchronized void drop() {
        if (!file.delete() && file.exists()) {
            file.deleteOnExit();
        }
    }

    /** What a killed save left behind; never read, so removed before the next write. */
    private void removeTemporaryFiles() {
        File[] leftovers = directory.listFiles();
        if (leftovers == null) {
            return;
        }
        for (File leftover : leftovers) {
            if (leftover.getName().endsWith(TEMPORARY_SUFFIX) && !leftover.delete()) {
                leftover.deleteOnExit();
            }
        }
    }

    /** The header up to and including its closing empty line's first line break. */
    private static byte[] header(InputStream in) throws IOException, UnusableException {
        ByteArrayOutputStream header = new ByteArrayOutputStream();
        int previous = -1;
        while (header.size() < MAX_HEADER_BYTES) {
            int b = in.read();
            if (b < 0) {
                break;
            }
            if (b == '\n' && previous == '\n') {
                return header.toByteArray();
            }
            header.write(b);
            previous = b;
        }
        throw new UnusableException("the kept file has no complete header");
    }

    private static int readFully(InputStream in, byte[] into) throws IOException {
        int read = 0;
        while (read < into.length) {
            int n = in.read(into, read, into.length - read);
            if (n < 0) {
                break;
            }
            read += n;
        }
        return read;
    }

    private static String field(String line, String name) throws UnusableException {
        if (!line.startsWith(name + " ")) {
            throw new UnusableException("the kept file's header has no " + name);
        }
        return line.substring(name.length() + 1);
    }

    private int length(String value) throws UnusableException {
        long length;
        try {
            length = Long.parseLong(value);
        } catch (NumberFormatException e) {
            throw new UnusableException("the kept file's header has a bad length");
        }
        if (length < 0 || length > maxDocumentBytes) {
            throw new UnusableException("the kept file's header has a bad length");
        }
        return (int) length;
    }

    private static String singleLine(String value) throws IOException {
        if (value.indexOf('\n') >= 0 || value.indexOf('\r') >= 0) {
            throw new IOException("a line break in a value to keep: " + value);
        }
        return value;
    }
}

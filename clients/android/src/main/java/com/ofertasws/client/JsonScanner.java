package com.ofertasws.client;

import java.nio.charset.Charset;

/**
 * A strict RFC 8259 JSON scanner for the snapshot document: it checks that the whole
 * document is well-formed JSON (UTF-8 included) and reads only what the client checks —
 * the top-level {@code version}, {@code count} and the number of elements of
 * {@code ofertas} — without building a tree.
 *
 * <p>Why not a JSON library: the client depends only on OkHttp and zstd-jni. Android's
 * {@code org.json} exists on devices but is a stub that throws in JVM unit tests, and on
 * the JVM it is an extra jar; a full tree of a 2.6 MB document would also cost several
 * times its size in memory. This scanner allocates nothing per value.
 *
 * <p>Bad input gets an {@link UnusableException} naming the byte offset, never a runtime
 * exception; nesting is limited to {@value #MAX_DEPTH} levels so a hostile document cannot
 * exhaust the stack.
 */
final class JsonScanner {
    /** Deepest nesting accepted; the snapshot document nests 3 levels. */
    static final int MAX_DEPTH = 64;

    private static final Charset UTF_8 = Charset.forName("UTF-8");

    private final byte[] in;
    private int pos;

    private JsonScanner(byte[] in) {
        this.in = in;
    }

    /** What the client checks in a snapshot document. */
    static final class Facts {
        final String version;
        final long count;
        final long offers;

        Facts(String version, long count, long offers) {
            this.version = version;
            this.count = count;
            this.offers = offers;
        }
    }

    /**
     * Scans a whole document: it must be one JSON object with a string {@code version},
     * a non-negative integer {@code count} and an array {@code ofertas} (each at most
     * once), and nothing but whitespace after it.
     */
    static Facts scan(byte[] document) throws UnusableException {
        return new JsonScanner(document).document();
    }

    private Facts document() throws UnusableException {
        String version = null;
        long count = -1;
        long offers = -1;
        skipWhitespace();
        expect('{');
        skipWhitespace();
        if (peek() == '}') {
            pos++;
        } else {
            while (true) {
                skipWhitespace();
                String key = string(true);
                skipWhitespace();
                expect(':');
                skipWhitespace();
                if ("version".equals(key)) {
                    if (version != null) {
                        throw fail("duplicate \"version\"");
                    }
                    if (peek() != '"') {
                        throw fail("\"version\" is not a string");
                    }
                    version = string(true);
                } else if ("count".equals(key)) {
                    if (count >= 0) {
                        throw fail("duplicate \"count\"");
                    }
                    count = count();
                } else if ("ofertas".equals(key)) {
                    if (offers >= 0) {
                        throw fail("duplicate \"ofertas\"");
                    }
                    if (peek() != '[') {
                        throw fail("\"ofertas\" is not an array");
                    }
                    offers = array(1);
                } else {
                    value(1);
                }
                skipWhitespace();
                int next = next();
                if (next == '}') {
                    break;
                }
                if (next != ',') {
                    throw failBefore("expected ',' or '}'");
                }
            }
        }
        skipWhitespace();
        if (pos != in.length) {
            throw fail("data after the document");
        }
        if (version == null) {
            throw new UnusableException("the document has no \"version\"");
        }
        if (count < 0) {
            throw new UnusableException("the document has no \"count\"");
        }
        if (offers < 0) {
            throw new UnusableException("the document has no \"ofertas\"");
        }
        return new Facts(version, count, offers);
    }

    /** A non-negative integer without fraction or exponent (the value of count). */
    private long count() throws UnusableException {
        int start = pos;
        long value = 0;
        while (pos < in.length && in[pos] >= '0' && in[pos] <= '9') {
            if (value > (Long.MAX_VALUE - 9) / 10) {
                throw fail("\"count\" is too large");
            }
            value = value * 10 + (in[pos] - '0');
            pos++;
        }
        if (pos == start || (in[start] == '0' && pos - start > 1)) {
            throw failAt(start, "\"count\" is not a non-negative integer");
        }
        int after = peek();
        if (after == '.' || after == 'e' || after == 'E') {
            throw failAt(start, "\"count\" is not an integer");
        }
        return value;
    }

    /** Any JSON value. */
    private void value(int depth) throws UnusableException {
        int c = peek();
        switch (c) {
            case '{':
                object(depth);
                break;
            case '[':
                array(depth);
                break;
            case '"':
                string(false);
                break;
            case 't':
                literal("true");
                break;
            case 'f':
                literal("false");
                break;
            case 'n':
                literal("null");
                break;
            default:
                number();
        }
    }

    private void object(int depth) throws UnusableException {
        enter(depth);
        expect('{');
        skipWhitespace();
        if (peek() == '}') {
            pos++;
            return;
        }
        while (true) {
            skipWhitespace();
            string(false);
            skipWhitespace();
            expect(':');
            skipWhitespace();
            value(depth + 1);
            skipWhitespace();
            int next = next();
            if (next == '}') {
                return;
            }
            if (next != ',') {
                throw failBefore("expected ',' or '}'");
            }
        }
    }

    /** An array; returns its number of elements. */
    private long array(int depth) throws UnusableException {
        enter(depth);
        expect('[');
        skipWhitespace();
        if (peek() == ']') {
            pos++;
            return 0;
        }
        long elements = 0;
        while (true) {
            skipWhitespace();
            value(depth + 1);
            elements++;
            skipWhitespace();
            int next = next();
            if (next == ']') {
                return elements;
            }
            if (next != ',') {
                throw failBefore("expected ',' or ']'");
            }
        }
    }

    private void enter(int depth) throws UnusableException {
        if (depth > MAX_DEPTH) {
            throw fail("nested deeper than " + MAX_DEPTH + " levels");
        }
    }

    /**
     * A string, its UTF-8 and escapes checked; decoded only when {@code decode} (the
     * top-level keys and the version), else {@code null}.
     */
    private String string(boolean decode) throws UnusableException {
        expect('"');
        StringBuilder out = decode ? new StringBuilder() : null;
        int run = pos;
        while (true) {
            if (pos >= in.length) {
                throw fail("unterminated string");
            }
            int b = in[pos] & 0xff;
            if (b == '"' || b == '\\') {
                if (out != null) {
                    out.append(new String(in, run, pos - run, UTF_8));
                }
                pos++;
                if (b == '"') {
                    return out == null ? null : out.toString();
                }
                char escaped = escape();
                if (out != null) {
                    out.append(escaped);
                }
                run = pos;
            } else if (b < 0x20) {
                throw fail("control character in a string");
            } else if (b < 0x80) {
                pos++;
            } else {
                utf8Sequence(b);
            }
        }
    }

    /** The character after a backslash (a UTF-16 code unit for \\uXXXX). */
    private char escape() throws UnusableException {
        int c = next();
        switch (c) {
            case '"':
                return '"';
            case '\\':
                return '\\';
            case '/':
                return '/';
            case 'b':
                return '\b';
            case 'f':
                return '\f';
            case 'n':
                return '\n';
            case 'r':
                return '\r';
            case 't':
                return '\t';
            case 'u':
                int unit = 0;
                for (int i = 0; i < 4; i++) {
                    int digit = Character.digit(next(), 16);
                    if (digit < 0) {
                        throw failBefore("bad \\u escape");
                    }
                    unit = unit * 16 + digit;
                }
                return (char) unit;
            default:
                throw failBefore("bad escape");
        }
    }

    /** One multi-byte UTF-8 sequence starting with {@code lead} (RFC 3629 ranges). */
    private void utf8Sequence(int lead) throws UnusableException {
        int continuation;
        int low = 0x80;
        int high = 0xbf;
        if (lead >= 0xc2 && lead <= 0xdf) {
            continuation = 1;
        } else if (lead >= 0xe0 && lead <= 0xef) {
            continuation = 2;
            if (lead == 0xe0) {
                low = 0xa0;
            } else if (lead == 0xed) {
                high = 0x9f;
            }
        } else if (lead >= 0xf0 && lead <= 0xf4) {
            continuation = 3;
            if (lead == 0xf0) {
                low = 0x90;
            } else if (lead == 0xf4) {
                high = 0x8f;
            }
        } else {
            throw fail("invalid UTF-8");
        }
        int start = pos;
        pos++;
        for (int i = 0; i < continuation; i++) {
            int b = pos < in.length ? in[pos] & 0xff : -1;
            boolean first = i == 0;
            if (b < (first ? low : 0x80) || b > (first ? high : 0xbf)) {
                throw failAt(start, "invalid UTF-8");
            }
            pos++;
        }
    }

    /** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
    private void number() throws UnusableException {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        if (peek() == '0') {
            pos++;
        } else if (digits() == 0) {
            throw failAt(start, "expected a value");
        }
        if (peek() == '.') {
            pos++;
            if (digits() == 0) {
                throw failAt(start, "bad number");
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            pos++;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (digits() == 0) {
                throw failAt(start, "bad number");
            }
        }
    }

    private int digits() {
        int start = pos;
        while (pos < in.length && in[pos] >= '0' && in[pos] <= '9') {
            pos++;
        }
        return pos - start;
    }

    private void literal(String word) throws UnusableException {
        for (int i = 0; i < word.length(); i++) {
            if (peek() != word.charAt(i)) {
                throw fail("expected " + word);
            }
            pos++;
        }
    }

    private void skipWhitespace() {
        while (pos < in.length) {
            byte b = in[pos];
            if (b != ' ' && b != '\t' && b != '\n' && b != '\r') {
                return;
            }
            pos++;
        }
    }

    private void expect(char c) throws UnusableException {
        if (peek() != c) {
            throw fail("expected '" + c + "'");
        }
        pos++;
    }

    /** The byte at the position, or -1 at the end. */
    private int peek() {
        return pos < in.length ? in[pos] & 0xff : -1;
    }

    /** The byte at the position (or -1 at the end), and moves past it. */
    private int next() {
        int c = peek();
        pos++;
        return c;
    }

    private UnusableException fail(String what) {
        return failAt(pos, what);
    }

    private UnusableException failBefore(String what) {
        return failAt(pos - 1, what);
    }

    private UnusableException failAt(int at, String what) {
        return new UnusableException("the document is not valid JSON: " + what + " at byte " + Math.min(at, in.length));
    }
}

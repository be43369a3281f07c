package com.ofertasws.client.system;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses the small JSON answers of {@code /meta} and {@code /refresh} into maps, lists,
 * strings, numbers (as {@code Double} or {@code Long}), booleans and null. Test code
 * only: the client itself never builds a tree.
 */
final class MiniJson {
    private final String in;
    private int pos;

    private MiniJson(String in) {
        this.in = in;
    }

    static Object parse(String json) {
        MiniJson parser = new MiniJson(json);
        Object value = parser.value();
        parser.whitespace();
        if (parser.pos != json.length()) {
            throw parser.error("data after the value");
        }
        return value;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> object(String json) {
        Object value = parse(json);
        if (!(value instanceof Map)) {
            throw new IllegalArgumentException("not a JSON object: " + json);
        }
        return (Map<String, Object>) value;
    }

    private Object value() {
        whitespace();
        if (pos >= in.length()) {
            throw error("unexpected end");
        }
        char c = in.charAt(pos);
        if (c == '{') {
            Map<String, Object> map = new LinkedHashMap<>();
            pos++;
            whitespace();
            if (peek() == '}') {
                pos++;
                return map;
            }
            do {
                whitespace();
                String key = string();
                whitespace();
                expect(':');
                map.put(key, value());
                whitespace();
            } while (take(','));
            expect('}');
            return map;
        }
        if (c == '[') {
            List<Object> list = new ArrayList<>();
            pos++;
            whitespace();
            if (peek() == ']') {
                pos++;
                return list;
            }
            do {
                list.add(value());
                whitespace();
            } while (take(','));
            expect(']');
            return list;
        }
        if (c == '"') {
            return string();
        }
        if (in.startsWith("true", pos)) {
            pos += 4;
            return Boolean.TRUE;
        }
        if (in.startsWith("false", pos)) {
            pos += 5;
            return Boolean.FALSE;
        }
        if (in.startsWith("null", pos)) {
            pos += 4;
            return null;
        }
        int start = pos;
        while (pos < in.length() && "+-0123456789.eE".indexOf(in.charAt(pos)) >= 0) {
            pos++;
        }
        String number = in.substring(start, pos);
        if (number.isEmpty()) {
            throw error("unexpected character");
        }
        return number.matches("-?\\d+") ? (Object) Long.valueOf(number) : (Object) Double.valueOf(number);
    }

    private String string() {
        expect('"');
        StringBuilder out = new StringBuilder();
        while (true) {
            if (pos >= in.length()) {
                throw error("unterminated string");
            }
            char c = in.charAt(pos++);
            if (c == '"') {
                return out.toString();
            }
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char e = in.charAt(pos++);
            switch (e) {
                case 'n':
                    out.append('\n');
                    break;
                case 't':
                    out.append('\t');
                    break;
                case 'r':
                    out.append('\r');
                    break;
                case 'b':
                    out.append('\b');
                    break;
                case 'f':
                    out.append('\f');
                    break;
                case 'u':
                    out.append((char) Integer.parseInt(in.substring(pos, pos + 4), 16));
                    pos += 4;
                    break;
                default:
                    out.append(e);
            }
        }
    }

    private void whitespace() {
        while (pos < in.length() && Character.isWhitespace(in.charAt(pos))) {
            pos++;
        }
    }

    private int peek() {
        return pos < in.length() ? in.charAt(pos) : -1;
    }

    private boolean take(char c) {
        if (peek() == c) {
            pos++;
            return true;
        }
        return false;
    }

    private void expect(char c) {
        if (!take(c)) {
            throw error("expected '" + c + "'");
        }
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException(what + " at " + pos + " of " + in);
    }
}

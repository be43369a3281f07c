package com.ofertasws.client;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPOutputStream;

/**
 * Test documents and encoded bodies, made at test time: snapshot documents shaped like
 * the server's, and their encodings made by independent encoders — the {@code zstd} CLI
 * ({@code --patch-from}, the way RFC 9842 deltas are described and the server's are
 * cross-checked) and the JDK's gzip. Nothing binary is committed, and a change to a
 * document shape needs no fixture regeneration.
 */
final class Fixtures {
    private Fixtures() {
    }

    /** A snapshot document of {@code offers} offers; {@code changed} offers differ in price. */
    static byte[] snapshot(String version, int offers, int changed) {
        StringBuilder json = new StringBuilder();
        json.append("{\"version\":\"").append(version)
                .append("\",\"generated_at\":\"2026-11-22T15:00:00.123Z\",\"count\":").append(offers)
                .append(",\"ofertas\":[");
        for (int i = 0; i < offers; i++) {
            if (i > 0) {
                json.append(',');
            }
            int cents = 1250 + (i * 37) % 9000 + (i < changed ? 7 : 0);
            json.append("{\"id\":").append(i + 1)
                    .append(",\"merchant_id\":").append(1001 + i % 41)
                    .append(",\"merchant_name\":\"Comercio Nº").append(i % 41)
                    .append("\",\"title\":\"Oferta de temporada número ").append(i)
                    .append("\",\"description\":").append(i % 3 == 0 ? "null" : "\"Descripción \\u00e1 " + i + "\"")
                    .append(",\"category\":\"Hogar\",\"price\":\"").append(cents / 100).append('.')
                    .append(String.format(Locale.ROOT, "%02d", cents % 100))
                    .append("\",\"original_price\":null,\"discount_pct\":12.5,\"currency\":\"USD\"")
                    .append(",\"image_url\":null,\"starts_at\":\"2026-11-01T05:00:00Z\",\"ends_at\":null")
                    .append(",\"score\":0.").append(String.format(Locale.ROOT, "%04d", 9999 - i % 9999)).append('}');
        }
        json.append("]}");
        return json.toString().getBytes(StandardCharsets.UTF_8);
    }

    static byte[] utf8(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        GZIPOutputStream gzip = new GZIPOutputStream(out);
        gzip.write(data);
        gzip.close();
        return out.toByteArray();
    }

    /** {@code zstd -19} of a file: a single-segment frame with its content size. */
    static byte[] zstd(byte[] data) throws IOException {
        return zstdCli(data, null, "-19");
    }

    /**
     * A zstd frame from standard input with {@code --long=28}: no content size, so the
     * frame header asks for a 256 MiB window, more than RFC 9842 lets a client accept.
     */
    static byte[] zstdWindow28(byte[] data) throws IOException {
        File dir = Files.createTempDirectory("fixture").toFile();
        try {
            File in = write(dir, "in", data);
            return run(dir, in, "zstd", "-q", "-c", "--long=28");
        } finally {
            deleteTree(dir);
        }
    }

    /** A dcz body: the RFC 9842 header, then {@code zstd --patch-from=OLD --long=27 -19 NEW}. */
    static byte[] dcz(byte[] dictionary, byte[] document) throws IOException {
        return dcz(dictionary, document, "-19");
    }

    /** A dcz body made at {@code level} (a fast level for large documents). */
    static byte[] dcz(byte[] dictionary, byte[] document, String level) throws IOException {
        return concat(dczHeader(KeptDocument.sha256(dictionary)), zstdCli(document, dictionary, level));
    }

    static byte[] dczHeader(byte[] sha256) {
        return concat(BodyDecoder.DCZ_MAGIC, sha256);
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    static byte[] flip(byte[] data, int index) {
        byte[] out = data.clone();
        out[index] ^= 0x55;
        return out;
    }

    private static byte[] zstdCli(byte[] data, byte[] dictionary, String level) throws IOException {
        File dir = Files.createTempDirectory("fixture").toFile();
        try {
            File in = write(dir, "new", data);
            List<String> command = new ArrayList<>(Arrays.asList("zstd", "-q", "-c", level));
            if (dictionary != null) {
                command.add("--patch-from=" + write(dir, "old", dictionary).getPath());
                command.add("--long=27");
            }
            command.add(in.getPath());
            return run(dir, null, command.toArray(new String[0]));
        } finally {
            deleteTree(dir);
        }
    }

    private static byte[] run(File dir, File stdin, String... command) throws IOException {
        File out = new File(dir, "out");
        File err = new File(dir, "err");
        ProcessBuilder builder = new ProcessBuilder(command).redirectOutput(out).redirectError(err);
        if (stdin != null) {
            builder.redirectInput(stdin);
        }
        Process process = builder.start();
        try {
            if (!process.waitFor(120, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                throw new IOException(String.join(" ", command) + " did not finish within 120 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
        if (process.exitValue() != 0) {
            throw new IOException(String.join(" ", command) + " failed: "
                    + new String(Files.readAllBytes(err.toPath()), StandardCharsets.UTF_8));
        }
        return Files.readAllBytes(out.toPath());
    }

    private static File write(File dir, String name, byte[] data) throws IOException {
        File file = new File(dir, name);
        Files.write(file.toPath(), data);
        return file;
    }

    static void deleteTree(File file) {
        File[] children = file.listFiles();
        if (children != null) {
            for (File child : children) {
                deleteTree(child);
            }
        }
        file.delete();
    }
}

package com.ofertasws.client.system;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import okhttp3.MediaType;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.RequestBody;
import okhttp3.Response;

/**
 * The running services the system tests use, named by the environment the driver sets:
 * {@code OFERTASWS_URL} (an api-service), {@code OFERTASWS_TOKEN} (a user JWT),
 * {@code OFERTASWS_ADMIN_TOKEN} (role admin, for {@code POST …/refresh}),
 * {@code OFERTASWS_DATABASE_URL} (psql applies the churn there) and
 * {@code OFERTASWS_CHURN_SQL} (the path of {@code scripts/churn.sql}). A missing
 * variable fails the tests with a message naming it: nothing is skipped.
 *
 * <p>Every wait polls with a deadline; nothing sleeps for a fixed time in the hope that
 * something happened.
 */
final class Stack {
    static final String SNAPSHOT_PATH = "/api/v4/ofertasws";
    private static final String[] VARIABLES = {
        "OFERTASWS_URL", "OFERTASWS_TOKEN", "OFERTASWS_ADMIN_TOKEN", "OFERTASWS_DATABASE_URL", "OFERTASWS_CHURN_SQL",
    };
    /** How long a new version may take to reach the API (the contract says 5 s). */
    private static final long VERSION_DEADLINE_MS = 60_000;
    /** How long deltas may take (the contract says 60 s; a debug build on 2 cores is slower). */
    private static final long DELTAS_DEADLINE_MS = 300_000;
    private static final long POLL_MS = 250;
    /** Each churn picks other offers (its :round), also across runs on one database. */
    private static final AtomicInteger ROUND = new AtomicInteger((int) (System.currentTimeMillis() / 1000 % 1_000_000) * 100);

    final String baseUrl;
    final String token;
    private final String adminToken;
    private final String databaseUrl;
    private final String churnSql;
    private final OkHttpClient http = new OkHttpClient.Builder()
            .readTimeout(180, TimeUnit.SECONDS)
            .build();

    private Stack(String baseUrl, String token, String adminToken, String databaseUrl, String churnSql) {
        this.baseUrl = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
        this.token = token;
        this.adminToken = adminToken;
        this.databaseUrl = databaseUrl;
        this.churnSql = churnSql;
    }

    /** The stack the environment names; fails naming every missing variable. */
    static Stack fromEnvironment() {
        List<String> missing = new ArrayList<>();
        for (String name : VARIABLES) {
            String value = System.getenv(name);
            if (value == null || value.trim().isEmpty()) {
                missing.add(name);
            }
        }
        if (!missing.isEmpty()) {
            throw new IllegalStateException("the Android client's system tests need a running ofertasws stack, named by "
                    + String.join(", ", VARIABLES) + "; missing: " + String.join(", ", missing)
                    + " (the Rust driver sets them: cargo test -p system-tests --test clients android)");
        }
        String churn = System.getenv("OFERTASWS_CHURN_SQL");
        if (!new File(churn).isFile()) {
            throw new IllegalStateException("OFERTASWS_CHURN_SQL=" + churn + " is not a file");
        }
        return new Stack(System.getenv("OFERTASWS_URL"), System.getenv("OFERTASWS_TOKEN"),
                System.getenv("OFERTASWS_ADMIN_TOKEN"), System.getenv("OFERTASWS_DATABASE_URL"), churn);
    }

    String snapshotUrl() {
        return baseUrl + SNAPSHOT_PATH;
    }

    /** What {@code GET /api/v4/ofertasws/meta} says now. */
    Meta meta() throws IOException {
        Request request = new Request.Builder().url(baseUrl + SNAPSHOT_PATH + "/meta")
                .header("Authorization", "Bearer " + token).build();
        try (Response response = http.newCall(request).execute()) {
            String body = response.body().string();
            if (response.code() != 200) {
                throw new IOException("GET /meta answered " + response.code() + ": " + body);
            }
            return new Meta(MiniJson.object(body));
        }
    }

    /**
     * A new version: half a day of changes (scripts/churn.sql, its own :round), a refresh
     * through {@code POST …/refresh}, then polls {@code /meta} until the API serves it.
     */
    String churnAndRefresh() throws IOException {
        churn();
        String version = refresh();
        long deadline = System.currentTimeMillis() + VERSION_DEADLINE_MS;
        while (!version.equals(meta().version)) {
            pause(deadline, "the API to serve version " + version);
        }
        return version;
    }

    /** Polls {@code /meta} until the current version's deltas list {@code base}. */
    Meta awaitDeltaFrom(String base) throws IOException {
        long deadline = System.currentTimeMillis() + DELTAS_DEADLINE_MS;
        while (true) {
            Meta meta = meta();
            if (meta.deltaBases.contains(base)) {
                return meta;
            }
            pause(deadline, "a delta from " + base + " to " + meta.version + " (deltas: " + meta.deltaBases + ")");
        }
    }

    /**
     * Polls {@code /meta} until the current version's deltas are published (they are
     * published all at once, so a non-empty list is the whole list).
     */
    Meta awaitDeltas() throws IOException {
        long deadline = System.currentTimeMillis() + DELTAS_DEADLINE_MS;
        while (true) {
            Meta meta = meta();
            if (!meta.deltaBases.isEmpty()) {
                return meta;
            }
            pause(deadline, "the deltas of " + meta.version);
        }
    }

    private void churn() throws IOException {
        int round = ROUND.incrementAndGet();
        File output = File.createTempFile("churn-", ".log");
        try {
            Process psql = new ProcessBuilder("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "round=" + round,
                    "-d", databaseUrl, "-f", churnSql)
                    .redirectErrorStream(true).redirectOutput(output).start();
            boolean finished;
            try {
                finished = psql.waitFor(120, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while psql ran", e);
            }
            String log = new String(Files.readAllBytes(output.toPath()), StandardCharsets.UTF_8).trim();
            if (!finished) {
                psql.destroyForcibly();
                throw new IOException("psql -f " + churnSql + " did not finish within 120 s: " + log);
            }
            if (psql.exitValue() != 0) {
                throw new IOException("psql -f " + churnSql + " failed (" + psql.exitValue() + "): " + log);
            }
            System.out.println("android: " + log);
        } finally {
            output.delete();
        }
    }

    /** {@code POST …/refresh} (waits for the outcome); returns the version made current. */
    private String refresh() throws IOException {
        long deadline = System.currentTimeMillis() + VERSION_DEADLINE_MS;
        while (true) {
            Request request = new Request.Builder().url(baseUrl + SNAPSHOT_PATH + "/refresh?timeout=120")
                    .header("Authorization", "Bearer " + adminToken)
                    .post(RequestBody.create(MediaType.parse("application/json"), "{}"))
                    .build();
            try (Response response = http.newCall(request).execute()) {
                String body = response.body().string();
                if (response.code() != 200) {
                    throw new IOException("POST /refresh answered " + response.code() + ": " + body);
                }
                Map<String, Object> outcome = MiniJson.object(body);
                Object status = outcome.get("status");
                if ("success".equals(status)) {
                    return (String) outcome.get("version");
                }
                if (!"skipped".equals(status)) {
                    throw new IOException("the refresh after a churn should publish a new version: " + body);
                }
            }
            // Skipped: another refresh held the lock; ask again once it has ended.
            pause(deadline, "a refresh that is not skipped");
        }
    }

    private static void pause(long deadline, String what) throws IOException {
        if (System.currentTimeMillis() > deadline) {
            throw new IOException("timed out waiting for " + what);
        }
        try {
            Thread.sleep(POLL_MS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while waiting for " + what, e);
        }
    }

    /** The parts of {@code /meta} the tests use. */
    static final class Meta {
        final String version;
        final String jsonSha256;
        final List<String> deltaBases = new ArrayList<>();

        @SuppressWarnings("unchecked")
        Meta(Map<String, Object> meta) {
            version = (String) meta.get("version");
            jsonSha256 = (String) meta.get("json_sha256");
            for (Object delta : (List<Object>) meta.get("deltas")) {
                deltaBases.add((String) ((Map<String, Object>) delta).get("version"));
            }
        }
    }
}

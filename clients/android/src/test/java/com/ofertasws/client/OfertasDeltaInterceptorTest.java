package com.ofertasws.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.Response;
import okhttp3.ResponseBody;
import okio.Buffer;
import okio.BufferedSource;
import okio.ForwardingSource;
import okio.Okio;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OfertasDeltaInterceptorTest {
    private static final String URL = "http://ofertasws.test/api/v4/ofertasws";
    private static final byte[] V1 = Fixtures.snapshot("V1", 300, 0);
    private static final byte[] V2 = Fixtures.snapshot("V2", 300, 15);
    private static final String V1_ETAG = "\"V1-zstd\"";
    private static final String V2_ETAG = "\"V2-zstd\"";

    @TempDir
    File dir;

    private final FakeServer server = new FakeServer();
    private final List<Transfer> transfers = Collections.synchronizedList(new ArrayList<Transfer>());
    private OfertasDeltaInterceptor interceptor;
    private OkHttpClient client;

    private void start(File directory) {
        interceptor = new OfertasDeltaInterceptor(directory, (request, transfer) -> transfers.add(transfer));
        client = new OkHttpClient.Builder().addInterceptor(interceptor).addInterceptor(server).build();
    }

    @Test
    void theFirstCallDownloadsTheWholeDocumentAndKeepsIt() throws Exception {
        start(dir);
        byte[] body = Fixtures.zstd(V1);
        server.then(request -> FakeServer.ok(request, body, "zstd", V1_ETAG, 300));
        assertDocument(V1, call());
        Request sent = server.lastRequest();
        assertEquals("zstd, gzip", sent.header("Accept-Encoding"));
        assertNull(sent.header("If-None-Match"));
        assertNull(sent.header("Available-Dictionary"));
        assertEquals("Bearer token", sent.header("Authorization"), "the app's own headers go through");
        Transfer transfer = lastTransfer();
        assertEquals(200, transfer.getServerStatus());
        assertEquals("zstd", transfer.getContentCoding());
        assertEquals(body.length, transfer.getBodyBytes());
        assertEquals(V1.length, transfer.getDocumentBytes());
        assertEquals("V1", transfer.getVersion());
        assertFalse(transfer.isDictionaryOffered());
        assertFalse(transfer.isFallback());
        assertTrue(new File(dir, DocumentStore.FILE_NAME).isFile());
    }

    @Test
    void anUnchanged304ReachesTheAppAsTheKeptDocument() throws Exception {
        keepV1();
        server.then(request -> FakeServer.notModified(request, V1_ETAG));
        Response response = call();
        assertDocument(V1, response);
        assertEquals(V1_ETAG, response.header("ETag"));
        assertEquals("300", response.header("X-Ofertas-Count"));
        Request sent = server.lastRequest();
        assertEquals("dcz, zstd, gzip", sent.header("Accept-Encoding"));
        assertEquals(V1_ETAG, sent.header("If-None-Match"));
        assertEquals(KeptDocument.availableDictionary(KeptDocument.sha256(V1)), sent.header("Available-Dictionary"));
        Transfer transfer = lastTransfer();
        assertEquals(304, transfer.getServerStatus());
        assertNull(transfer.getContentCoding());
        assertEquals(0, transfer.getBodyBytes());
        assertEquals("V1", transfer.getVersion());
        assertTrue(transfer.isDictionaryOffered());
    }

    @Test
    void aDeltaIsDecodedAgainstTheKeptDocumentAndReplacesIt() throws Exception {
        keepV1();
        byte[] delta = Fixtures.dcz(V1, V2);
        server.then(request -> FakeServer.ok(request, delta, "dcz", "\"V2-dcz-V1\"", 300));
        assertDocument(V2, call());
        assertEquals("dcz", lastTransfer().getContentCoding());
        assertEquals(delta.length, lastTransfer().getBodyBytes());
        server.then(request -> FakeServer.notModified(request, "\"V2-dcz-V1\""));
        assertDocument(V2, call());
        assertEquals(KeptDocument.availableDictionary(KeptDocument.sha256(V2)),
                server.lastRequest().header("Available-Dictionary"));
        assertEquals("\"V2-dcz-V1\"", server.lastRequest().header("If-None-Match"));
    }

    @Test
    void aDeltaMadeAgainstAnotherDictionaryFallsBackToOnePlainRequest() throws Exception {
        keepV1();
        byte[] wrong = Fixtures.flip(Fixtures.dcz(V1, V2), 12);
        byte[] whole = Fixtures.zstd(V2);
        server.then(request -> FakeServer.ok(request, wrong, "dcz", "\"V2-dcz-V1\"", 300))
                .then(request -> FakeServer.ok(request, whole, "zstd", V2_ETAG, 300));
        assertDocument(V2, call());
        assertPlainRetry("another dictionary");
        assertEquals(BodyDecoder.DCZ_HEADER_BYTES + whole.length, lastTransfer().getBodyBytes(),
                "what was read: the dcz header, then the whole document");
    }

    @Test
    void aDeltaThatDoesNotDecodeFallsBack() throws Exception {
        keepV1();
        byte[] corrupt = Fixtures.flip(Fixtures.dcz(V1, V2), 40);
        server.then(request -> FakeServer.ok(request, corrupt, "dcz", "\"V2-dcz-V1\"", 300))
                .then(request -> FakeServer.ok(request, Fixtures.gzip(V2), "gzip", "\"V2-gzip\"", 300));
        assertDocument(V2, call());
        assertPlainRetry("does not decode");
        assertEquals("gzip", lastTransfer().getContentCoding());
    }

    @Test
    void aDocumentThatFailsItsChecksFallsBack() throws Exception {
        keepV1();
        server.then(request -> FakeServer.ok(request, Fixtures.zstd(V2), "zstd", "\"V3-zstd\"", 300))
                .then(request -> FakeServer.ok(request, V2, null, V2_ETAG, 300));
        assertDocument(V2, call());
        assertPlainRetry("does not name version V2");
        assertEquals("identity", lastTransfer().getContentCoding());

        server.then(request -> FakeServer.ok(request, Fixtures.zstd(V1), "zstd", V1_ETAG, 299))
                .then(request -> FakeServer.ok(request, Fixtures.zstd(V1), "zstd", V1_ETAG, 300));
        assertDocument(V1, call());
        assertTrue(lastTransfer().getFallbackReason().contains("X-Ofertas-Count"));

        byte[] notJson = Fixtures.zstd(Fixtures.utf8("<html>maintenance</html>"));
        server.then(request -> FakeServer.ok(request, notJson, "zstd", V2_ETAG, 300))
                .then(request -> FakeServer.ok(request, Fixtures.zstd(V2), "zstd", V2_ETAG, 300));
        assertDocument(V2, call());
        assertTrue(lastTransfer().getFallbackReason().contains("not valid JSON"));
    }

    @Test
    void a304ForAnotherVersionFallsBack() throws Exception {
        keepV1();
        server.then(request -> FakeServer.notModified(request, V2_ETAG))
                .then(request -> FakeServer.ok(request, Fixtures.zstd(V2), "zstd", V2_ETAG, 300));
        assertDocument(V2, call());
        assertPlainRetry("304");
    }

    @Test
    void whenThePlainRequestIsUnusableTooTheAppGetsAnIOExceptionAndTheKeptDocumentStays() throws Exception {
        keepV1();
        byte[] garbage = Fixtures.utf8("garbage");
        server.then(request -> FakeServer.ok(request, garbage, "dcz", "\"V2-dcz-V1\"", 300))
                .then(request -> FakeServer.ok(request, garbage, "zstd", V2_ETAG, 300));
        IOException e = assertThrows(IOException.class, this::call);
        assertTrue(e.getMessage().contains("unusable too"), e.getMessage());
        assertEquals(3, server.requests().size(), "exactly one retry");
        server.then(request -> FakeServer.notModified(request, V1_ETAG));
        assertDocument(V1, call());
    }

    @Test
    void otherStatusesPassThroughUntouched() throws Exception {
        keepV1();
        byte[] error = Fixtures.utf8("{\"error\":\"unauthorized\",\"message\":\"expired\"}");
        server.then(request -> FakeServer.status(request, 401)
                .header("WWW-Authenticate", "Bearer")
                .body(ResponseBody.create(FakeServer.JSON, error)).build());
        try (Response response = call()) {
            assertEquals(401, response.code());
            assertEquals("Bearer", response.header("WWW-Authenticate"));
            assertArrayEquals(error, response.body().bytes());
        }
        assertEquals(401, lastTransfer().getServerStatus());
        server.then(request -> FakeServer.status(request, 503).header("Retry-After", "5")
                .body(ResponseBody.create(FakeServer.JSON, error)).build());
        try (Response response = call()) {
            assertEquals(503, response.code());
            assertEquals("5", response.header("Retry-After"));
        }
        assertEquals(3, server.requests().size(), "no retry for a status");
        server.then(request -> FakeServer.notModified(request, V1_ETAG));
        assertDocument(V1, call());
    }

    @Test
    void otherRequestsPassThroughUntouched() throws Exception {
        keepV1();
        server.otherwise(request -> FakeServer.ok(request, Fixtures.utf8("{}"), null, "\"m\"", 0));
        Request meta = new Request.Builder().url(URL + "/meta").header("Accept-Encoding", "br").build();
        client.newCall(meta).execute().close();
        assertEquals("br", server.lastRequest().header("Accept-Encoding"));
        assertNull(server.lastRequest().header("Available-Dictionary"));
        client.newCall(new Request.Builder().url(URL).head().build()).execute().close();
        assertNull(server.lastRequest().header("Available-Dictionary"));
        assertEquals(1, transfers.size(), "only the snapshot GET of keepV1 was reported");
    }

    @Test
    void aDamagedKeptDocumentIsDroppedAndNeverOffered() throws Exception {
        keepV1();
        File file = new File(dir, DocumentStore.FILE_NAME);
        byte[] whole = Files.readAllBytes(file.toPath());
        Files.write(file.toPath(), Fixtures.flip(whole, whole.length - 10));
        server.then(request -> FakeServer.ok(request, Fixtures.zstd(V2), "zstd", V2_ETAG, 300));
        assertDocument(V2, call());
        Request sent = server.lastRequest();
        assertNull(sent.header("Available-Dictionary"));
        assertNull(sent.header("If-None-Match"));
        assertEquals("zstd, gzip", sent.header("Accept-Encoding"));
        assertTrue(lastTransfer().getDroppedKeptReason().contains("SHA-256"), lastTransfer().toString());
        assertFalse(lastTransfer().isDictionaryOffered());
    }

    @Test
    void aKeptDocumentWhoseEtagNamesAnotherVersionIsDropped() throws Exception {
        keepV1();
        File file = new File(dir, DocumentStore.FILE_NAME);
        String whole = new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8);
        Files.write(file.toPath(), whole.replace("etag \"V1-zstd\"", "etag \"V2-zstd\"").getBytes(StandardCharsets.UTF_8));
        server.then(request -> FakeServer.ok(request, Fixtures.zstd(V2), "zstd", V2_ETAG, 300));
        assertDocument(V2, call());
        assertNull(server.lastRequest().header("Available-Dictionary"));
        assertTrue(lastTransfer().getDroppedKeptReason().contains("does not name version V1"));
    }

    @Test
    void aNetworkFailureIsAnIOExceptionWithoutRetry() throws Exception {
        keepV1();
        byte[] body = Fixtures.zstd(V2);
        server.then(request -> FakeServer.ok(request, new byte[0], "zstd", V2_ETAG, 300).newBuilder()
                .body(ResponseBody.create(FakeServer.JSON, body.length, breaksAfter(body, 100))).build());
        IOException e = assertThrows(IOException.class, this::call);
        assertEquals("connection reset", e.getMessage());
        assertEquals(2, server.requests().size());
        server.then(request -> FakeServer.notModified(request, V1_ETAG));
        assertDocument(V1, call());
    }

    @Test
    void aStoreThatCannotBeWrittenStillAnswersTheDocument() throws Exception {
        File notADirectory = new File(dir, "file");
        Files.write(notADirectory.toPath(), new byte[] {1});
        start(notADirectory);
        server.then(request -> FakeServer.ok(request, Fixtures.zstd(V1), "zstd", V1_ETAG, 300));
        assertDocument(V1, call());
        assertNotNull(lastTransfer().getStoreError());
    }

    @Test
    void gzipAndIdentityAnswersAreDecodedToo() throws Exception {
        start(dir);
        server.then(request -> FakeServer.ok(request, Fixtures.gzip(V1), "gzip", "\"V1-gzip\"", 300))
                .then(request -> FakeServer.ok(request, V2, null, "\"V2\"", 300));
        assertDocument(V1, call());
        assertDocument(V2, call());
        assertEquals("identity", lastTransfer().getContentCoding());
        assertEquals("\"V1-gzip\"", server.lastRequest().header("If-None-Match"));
    }

    @Test
    void concurrentCallsShareOneInterceptorSafely() throws Exception {
        keepV1();
        byte[] delta = Fixtures.dcz(V1, V2);
        byte[] whole = Fixtures.zstd(V2);
        String v1Dictionary = KeptDocument.availableDictionary(KeptDocument.sha256(V1));
        server.otherwise(request -> {
            if ("\"V2-dcz-V1\"".equals(request.header("If-None-Match"))) {
                return FakeServer.notModified(request, "\"V2-dcz-V1\"");
            }
            if (v1Dictionary.equals(request.header("Available-Dictionary"))) {
                return FakeServer.ok(request, delta, "dcz", "\"V2-dcz-V1\"", 300);
            }
            return FakeServer.ok(request, whole, "zstd", V2_ETAG, 300);
        });
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<byte[]>> results = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                results.add(pool.submit(() -> {
                    try (Response response = call()) {
                        return response.body().bytes();
                    }
                }));
            }
            for (Future<byte[]> result : results) {
                assertArrayEquals(V2, result.get(60, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
        for (Transfer transfer : transfers) {
            assertFalse(transfer.isFallback(), transfer.toString());
        }
        assertEquals(1, dir.listFiles().length, "one kept file, no temporary file left");
        server.otherwise(request -> FakeServer.notModified(request, "\"V2-dcz-V1\""));
        assertDocument(V2, call());
    }

    private void keepV1() throws Exception {
        start(dir);
        server.then(request -> FakeServer.ok(request, Fixtures.zstd(V1), "zstd", V1_ETAG, 300));
        assertDocument(V1, call());
    }

    private Response call() throws IOException {
        return client.newCall(new Request.Builder().url(URL).header("Authorization", "Bearer token").build()).execute();
    }

    private void assertDocument(byte[] expected, Response response) throws IOException {
        try (Response r = response) {
            assertEquals(200, r.code());
            assertNull(r.header("Content-Encoding"));
            assertNull(r.header("Content-Length"));
            assertArrayEquals(expected, r.body().bytes());
        }
    }

    private void assertPlainRetry(String reason) {
        List<Request> requests = server.requests();
        Request retry = requests.get(requests.size() - 1);
        Request first = requests.get(requests.size() - 2);
        assertNotNull(first.header("Available-Dictionary"));
        assertEquals("zstd, gzip", retry.header("Accept-Encoding"));
        assertNull(retry.header("If-None-Match"));
        assertNull(retry.header("Available-Dictionary"));
        assertEquals("Bearer token", retry.header("Authorization"));
        Transfer transfer = lastTransfer();
        assertTrue(transfer.isFallback());
        assertTrue(transfer.getFallbackReason().contains(reason), transfer.getFallbackReason());
    }

    private Transfer lastTransfer() {
        return transfers.get(transfers.size() - 1);
    }

    /** A body that serves {@code good} bytes of {@code body}, then breaks like a reset connection. */
    private static BufferedSource breaksAfter(byte[] body, int good) {
        Buffer served = new Buffer().write(body, 0, good);
        return Okio.buffer(new ForwardingSource(served) {
            @Override
            public long read(Buffer sink, long byteCount) throws IOException {
                long n = super.read(sink, byteCount);
                if (n < 0) {
                    throw new IOException("connection reset");
                }
                return n;
            }
        });
    }
}

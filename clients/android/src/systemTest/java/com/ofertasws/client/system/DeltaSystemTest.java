package com.ofertasws.client.system;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Android client against the real services (api-service, refresh-service run,
 * PostgreSQL seeded with 7,000 offers, Redis), named by the environment ({@link Stack}).
 * Each test makes the server state it needs (churn and refresh, then waits for the
 * deltas by polling {@code /meta}), so any one may run alone; they run in this order so
 * that the last line printed is the churn step's {@code full=<bytes> delta=<bytes>}.
 * Bytes are counted on the client's sockets.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DeltaSystemTest {
    private static Stack stack;

    @TempDir
    File dir;

    @BeforeAll
    static void stack() {
        stack = Stack.fromEnvironment();
    }

    @Test
    @Order(1)
    void theFirstCallIsWholeAndAnUnchangedDocumentIsA304TheAppNeverSees() throws IOException {
        App app = app("app");
        Stack.Meta meta = stack.meta();
        App.Fetch first = app.fetch();
        report("first call", first);
        assertEquals(200, first.status);
        assertEquals(200, first.transfer.getServerStatus());
        assertEquals("zstd", first.transfer.getContentCoding());
        assertEquals(meta.jsonSha256, first.sha256, "the document is the server's");
        assertNull(first.first().get("Available-Dictionary"), "nothing kept, nothing named");

        App.Fetch unchanged = app.fetch();
        report("unchanged", unchanged);
        assertEquals(200, unchanged.status, "the app gets a 200");
        assertEquals(304, unchanged.transfer.getServerStatus(), "the server answered 304");
        assertArrayEquals(first.document, unchanged.document, "the same bytes");
        assertNotNull(unchanged.first().get("Available-Dictionary"));
        assertNotNull(unchanged.first().get("If-None-Match"));
        assertTrue(unchanged.wireBytes < 2_000, "a 304 is headers only: " + unchanged.wireBytes);
    }

    @Test
    @Order(2)
    void aDamagedKeptDocumentIsDroppedNotOfferedAndDownloadedWhole() throws IOException {
        App app = app("app");
        app.fetch();
        File kept = onlyFile(app.directory);
        try (RandomAccessFile file = new RandomAccessFile(kept, "rw")) {
            long at = file.length() - 1000;
            file.seek(at);
            int b = file.read();
            file.seek(at);
            file.write(b ^ 0x55);
        }
        App.Fetch fetch = app.fetch();
        report("damaged kept document", fetch);
        assertEquals(200, fetch.status);
        assertEquals(1, fetch.requests.size());
        assertNull(fetch.first().get("Available-Dictionary"), "a damaged document is never named");
        assertNull(fetch.first().get("If-None-Match"));
        assertEquals("zstd, gzip", fetch.first().get("Accept-Encoding"));
        assertEquals("zstd", fetch.transfer.getContentCoding());
        assertNotNull(fetch.transfer.getDroppedKeptReason());
        assertEquals(stack.meta().jsonSha256, fetch.sha256);

        App.Fetch next = app.fetch();
        assertEquals(304, next.transfer.getServerStatus(), "the store is whole again");
    }

    @Test
    @Order(3)
    void twoClientsWithSeparateDirectoriesShareNothing() throws IOException {
        App one = app("one");
        App two = app("two");
        one.fetch();
        String before = stack.meta().version;
        stack.churnAndRefresh();
        stack.awaitDeltaFrom(before);
        App.Fetch second = two.fetch();
        App.Fetch delta = one.fetch();
        report("client one (held the previous version)", delta);
        report("client two (held nothing)", second);
        assertEquals("dcz", delta.transfer.getContentCoding());
        assertEquals("zstd", second.transfer.getContentCoding());
        assertArrayEquals(second.document, delta.document);
        assertEquals(stack.meta().jsonSha256, delta.sha256);
        // The app may delete its cache: the other client does not notice.
        assertTrue(onlyFile(one.directory).delete());
        assertEquals(304, two.fetch().transfer.getServerStatus());
        App.Fetch again = one.fetch();
        assertEquals("zstd", again.transfer.getContentCoding());
        assertFalse(again.transfer.isDictionaryOffered());
        assertEquals(304, one.fetch().transfer.getServerStatus());
    }

    @Test
    @Order(4)
    void aDeltaThatDoesNotDecodeIsReplacedByExactlyOnePlainRequest() throws Exception {
        try (CorruptingProxy proxy = new CorruptingProxy(stack.baseUrl)) {
            App app = new App(new File(dir, "proxied"), proxy.baseUrl() + Stack.SNAPSHOT_PATH, stack.token);
            String held = app.fetch().transfer.getVersion();
            stack.churnAndRefresh();
            stack.awaitDeltaFrom(held);
            int before = proxy.requests().size();

            App.Fetch fetch = app.fetch();
            report("corrupted delta, then the plain retry", fetch);
            assertEquals(1, proxy.corrupted(), "the server sent a delta, and it was corrupted");
            assertEquals(before + 2, proxy.requests().size(), "exactly one retry");
            okhttp3.Headers retry = proxy.requests().get(before + 1);
            assertNotNull(proxy.requests().get(before).get("Available-Dictionary"));
            assertNull(retry.get("Available-Dictionary"));
            assertNull(retry.get("If-None-Match"));
            assertEquals("zstd, gzip", retry.get("Accept-Encoding"));
            assertEquals(200, fetch.status);
            assertTrue(fetch.transfer.isFallback());
            assertEquals("zstd", fetch.transfer.getContentCoding());
            assertEquals(stack.meta().jsonSha256, fetch.sha256, "the app still gets the right document");
        }
    }

    @Test
    @Order(5)
    void aDocumentOlderThanEveryDeltaIsDownloadedWhole() throws IOException {
        App app = app("app");
        String held = app.fetch().transfer.getVersion();
        Stack.Meta meta = stack.meta();
        int refreshes = 0;
        while (refreshes < 5 || meta.deltaBases.contains(held)) {
            assertTrue(refreshes < 10, "version " + held + " still has a delta after 10 refreshes: " + meta.deltaBases);
            stack.churnAndRefresh();
            meta = stack.awaitDeltas();
            refreshes++;
        }
        System.out.println("android: " + held + " fell out of the deltas after " + refreshes + " refreshes: " + meta.deltaBases);
        App.Fetch fetch = app.fetch();
        report("kept document older than every delta", fetch);
        assertTrue(fetch.transfer.isDictionaryOffered());
        assertEquals(200, fetch.transfer.getServerStatus());
        assertEquals("zstd", fetch.transfer.getContentCoding());
        assertFalse(fetch.transfer.isFallback());
        assertEquals(stack.meta().jsonSha256, fetch.sha256);
    }

    /** Half a day of changes: the delta against the whole download, printed last. */
    @Test
    @Order(6)
    void afterAChurnTheDeltaIsATenthOfTheWholeDownload() throws IOException {
        App holder = app("holder");
        App fresh = app("fresh");
        String held = holder.fetch().transfer.getVersion();
        stack.churnAndRefresh();
        Stack.Meta meta = stack.awaitDeltaFrom(held);

        App.Fetch whole = fresh.fetch();
        App.Fetch delta = holder.fetch();
        report("churn step, whole download", whole);
        report("churn step, delta", delta);
        assertEquals("zstd", whole.transfer.getContentCoding());
        assertEquals("dcz", delta.transfer.getContentCoding());
        assertEquals(meta.version, delta.transfer.getVersion());
        assertEquals(meta.jsonSha256, delta.sha256, "the decoded delta is the server's document, byte for byte");
        assertEquals(meta.jsonSha256, whole.sha256);
        assertTrue(delta.wireBytes * 10 <= whole.wireBytes,
                "delta " + delta.wireBytes + " B is over a tenth of the whole " + whole.wireBytes + " B");
        System.out.println("full=" + whole.wireBytes + " delta=" + delta.wireBytes);
    }

    private App app(String name) {
        return new App(new File(dir, name), stack.snapshotUrl(), stack.token);
    }

    private static File onlyFile(File directory) {
        File[] files = directory.listFiles();
        assertNotNull(files, directory + " holds nothing");
        assertEquals(1, files.length, "one kept file in " + directory);
        return files[0];
    }

    private static void report(String what, App.Fetch fetch) {
        System.out.println("android: " + what + ": " + fetch);
    }
}

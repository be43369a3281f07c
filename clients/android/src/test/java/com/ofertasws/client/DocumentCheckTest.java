package com.ofertasws.client;

import static com.ofertasws.client.Fixtures.utf8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class DocumentCheckTest {
    private static final byte[] DOCUMENT = Fixtures.snapshot("V7", 3, 0);

    @Test
    void acceptsADocumentWithItsEtagAndCount() throws Exception {
        assertEquals("V7", DocumentCheck.verify(DOCUMENT, "\"V7-zstd\"", "3").version);
        assertEquals(3, DocumentCheck.verify(DOCUMENT, "W/\"V7\"", null).count);
    }

    @Test
    void everyEtagFormOfTheVersionNamesIt() {
        assertTrue(DocumentCheck.etagNames("\"V7\"", "V7"));
        assertTrue(DocumentCheck.etagNames("\"V7-zstd\"", "V7"));
        assertTrue(DocumentCheck.etagNames("\"V7-gzip\"", "V7"));
        assertTrue(DocumentCheck.etagNames("\"V7-dcz-V5\"", "V7"));
        assertTrue(DocumentCheck.etagNames("W/\"V7\"", "V7"));
        assertTrue(DocumentCheck.etagNames(" W/\"V7-zstd\" ", "V7"));
    }

    @Test
    void anEtagOfAnotherVersionDoesNot() {
        assertFalse(DocumentCheck.etagNames("\"V77-zstd\"", "V7"));
        assertFalse(DocumentCheck.etagNames("\"V\"", "V7"));
        assertFalse(DocumentCheck.etagNames("\"V7", "V7"));
        assertFalse(DocumentCheck.etagNames("V7-zstd", "V7"));
        assertFalse(DocumentCheck.etagNames("\"V5-dcz-V7\"", "V7"));
        assertFalse(DocumentCheck.etagNames("\"\"", ""));
        assertFalse(DocumentCheck.etagNames("*", "V7"));
    }

    @Test
    void rejectsAMismatchedEtagCountOrHeader() {
        assertThrows(UnusableException.class, () -> DocumentCheck.verify(DOCUMENT, "\"V8-zstd\"", "3"));
        assertThrows(UnusableException.class, () -> DocumentCheck.verify(DOCUMENT, null, "3"));
        assertThrows(UnusableException.class, () -> DocumentCheck.verify(DOCUMENT, "\"V7-zstd\"", "4"));
        assertThrows(UnusableException.class, () -> DocumentCheck.verify(DOCUMENT, "\"V7-zstd\"", "three"));
        byte[] wrongCount = utf8("{\"version\":\"V7\",\"count\":2,\"ofertas\":[{},{},{}]}");
        assertThrows(UnusableException.class, () -> DocumentCheck.verify(wrongCount, "\"V7\"", null));
    }
}

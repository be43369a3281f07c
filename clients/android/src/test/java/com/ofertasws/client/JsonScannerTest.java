package com.ofertasws.client;

import static com.ofertasws.client.Fixtures.utf8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class JsonScannerTest {
    @Test
    void readsTheTopLevelFactsOfASnapshot() throws Exception {
        JsonScanner.Facts facts = JsonScanner.scan(Fixtures.snapshot("20261122T150000Z-ab12", 250, 0));
        assertEquals("20261122T150000Z-ab12", facts.version);
        assertEquals(250, facts.count);
        assertEquals(250, facts.offers);
    }

    @Test
    void acceptsAnyOrderWhitespaceAndOtherFields() throws Exception {
        JsonScanner.Facts facts = JsonScanner.scan(utf8(
                " \r\n{ \"ofertas\" : [ {\"a\":[1,-2.5e+3,true,false,null,{}]} , [] ],\t\"extra\":{\"x\":\"y\"},"
                        + " \"count\":2, \"version\":\"v\\u0031\\\"\\/\\n\" } \n"));
        assertEquals("v1\"/\n", facts.version);
        assertEquals(2, facts.count);
        assertEquals(2, facts.offers);
    }

    @Test
    void decodesEscapedKeysAndUtf8Versions() throws Exception {
        JsonScanner.Facts facts = JsonScanner.scan(utf8(
                "{\"vers\\u0069on\":\"año-€-\uD83D\uDE00\",\"count\":0,\"ofertas\":[]}"));
        assertEquals("año-€-\uD83D\uDE00", facts.version);
        assertEquals(0, facts.offers);
    }

    @ParameterizedTest
    @ValueSource(strings = {
        "",
        "[]",
        "{}",
        "{\"count\":1,\"ofertas\":[1]}",
        "{\"version\":\"v\",\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":0}",
        "{\"version\":1,\"count\":0,\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":\"0\",\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":-1,\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":1.0,\"ofertas\":[1]}",
        "{\"version\":\"v\",\"count\":1e0,\"ofertas\":[1]}",
        "{\"version\":\"v\",\"count\":01,\"ofertas\":[1]}",
        "{\"version\":\"v\",\"count\":99999999999999999999,\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":{}}",
        "{\"version\":\"v\",\"version\":\"w\",\"count\":0,\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":0,\"count\":0,\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[],\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[],}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[1,]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[]} x",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[]}{}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[]",
        "{\"version\":\"v,\"count\":0,\"ofertas\":[]}",
        "{\"version\":\"v\\x\",\"count\":0,\"ofertas\":[]}",
        "{\"version\":\"v\\u12\",\"count\":0,\"ofertas\":[]}",
        "{\"version\":\"v\tw\",\"count\":0,\"ofertas\":[]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[tru]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[nul]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[-]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[1.]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[.5]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[1e]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[+1]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[\"a\" \"b\"]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[{\"a\" 1}]}",
        "{\"version\":\"v\",\"count\":0,\"ofertas\":[{1:1}]}",
        "{\"version\":\"v\" \"count\":0,\"ofertas\":[]}",
        "{'version':'v','count':0,'ofertas':[]}",
        "\uFEFF{\"version\":\"v\",\"count\":0,\"ofertas\":[]}",
    })
    void rejectsWhatIsNotASnapshotDocument(String document) {
        assertThrows(UnusableException.class, () -> JsonScanner.scan(utf8(document)));
    }

    @Test
    void rejectsInvalidUtf8() {
        byte[][] bad = {
            {(byte) 0xff},
            {(byte) 0xc0, (byte) 0xaf},
            {(byte) 0xe0, (byte) 0x80, (byte) 0xaf},
            {(byte) 0xed, (byte) 0xa0, (byte) 0x80},
            {(byte) 0xf4, (byte) 0x90, (byte) 0x80, (byte) 0x80},
            {(byte) 0xc3},
        };
        for (byte[] sequence : bad) {
            byte[] document = Fixtures.concat(Fixtures.concat(utf8("{\"version\":\"v"), sequence),
                    utf8("\",\"count\":0,\"ofertas\":[]}"));
            assertThrows(UnusableException.class, () -> JsonScanner.scan(document), Arrays.toString(sequence));
        }
    }

    @Test
    void aDeeplyNestedDocumentIsRejectedNotAStackOverflow() {
        StringBuilder deep = new StringBuilder("{\"version\":\"v\",\"count\":1,\"ofertas\":[");
        for (int i = 0; i < 100_000; i++) {
            deep.append('[');
        }
        UnusableException e = assertThrows(UnusableException.class, () -> JsonScanner.scan(utf8(deep.toString())));
        assertTrue(e.getMessage().contains("nested deeper"), e.getMessage());
    }

    @Test
    void everyTruncationOfADocumentIsRejected() {
        byte[] document = Fixtures.snapshot("v", 3, 0);
        for (int length = 0; length < document.length; length++) {
            byte[] truncated = Arrays.copyOf(document, length);
            assertThrows(UnusableException.class, () -> JsonScanner.scan(truncated), "length " + length);
        }
    }
}

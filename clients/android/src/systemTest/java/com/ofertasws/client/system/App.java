package com.ofertasws.client.system;

import java.io.File;
import java.io.IOException;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import com.ofertasws.client.OfertasDeltaInterceptor;
import com.ofertasws.client.Transfer;

import okhttp3.Headers;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.Response;
import okio.ByteString;

/**
 * One app as its developers would set it up: its own {@code OkHttpClient} with the
 * interceptor and its own directory. The test sees what it could not see in an app: the
 * bytes read from its sockets and the headers of each request as sent on the network.
 */
final class App {
    final File directory;
    private final String url;
    private final String token;
    private final CountingSocketFactory sockets = new CountingSocketFactory();
    private final List<Headers> sent = new ArrayList<>();
    private final List<Transfer> transfers = new ArrayList<>();
    private final OkHttpClient client;

    App(File directory, String url, String token) {
        this.directory = directory;
        this.url = url;
        this.token = token;
        this.client = new OkHttpClient.Builder()
                .socketFactory(sockets)
                .readTimeout(60, TimeUnit.SECONDS)
                .addInterceptor(new OfertasDeltaInterceptor(directory, (request, transfer) -> {
                    synchronized (transfers) {
                        transfers.add(transfer);
                    }
                }))
                .addNetworkInterceptor(chain -> {
                    synchronized (sent) {
                        sent.add(chain.request().headers());
                    }
                    return chain.proceed(chain.request());
                })
                .build();
    }

    /** What one call of the snapshot URL gave the app, and what it cost. */
    static final class Fetch {
        final int status;
        final byte[] document;
        final String sha256;
        final Transfer transfer;
        /** Bytes read from the sockets during the call: headers, framing and bodies. */
        final long wireBytes;
        /** The headers of each network request of the call (two after a fallback). */
        final List<Headers> requests;

        Fetch(int status, byte[] document, Transfer transfer, long wireBytes, List<Headers> requests) {
            this.status = status;
            this.document = document;
            this.sha256 = sha256(document);
            this.transfer = transfer;
            this.wireBytes = wireBytes;
            this.requests = requests;
        }

        /** The first network request's headers. */
        Headers first() {
            return requests.get(0);
        }

        @Override
        public String toString() {
            return "status=" + status + " wire=" + wireBytes + " " + transfer;
        }
    }

    /** Calls the snapshot URL as app code does: a plain GET with its token. */
    Fetch fetch() throws IOException {
        long before = sockets.bytesRead();
        int requestsBefore;
        int transfersBefore;
        synchronized (sent) {
            requestsBefore = sent.size();
        }
        synchronized (transfers) {
            transfersBefore = transfers.size();
        }
        Request request = new Request.Builder().url(url).header("Authorization", "Bearer " + token).build();
        try (Response response = client.newCall(request).execute()) {
            byte[] body = response.body().bytes();
            long wire = sockets.bytesRead() - before;
            List<Headers> requests;
            synchronized (sent) {
                requests = new ArrayList<>(sent.subList(requestsBefore, sent.size()));
            }
            Transfer transfer;
            synchronized (transfers) {
                transfer = transfers.size() > transfersBefore ? transfers.get(transfers.size() - 1) : null;
            }
            return new Fetch(response.code(), body, transfer, wire, requests);
        }
    }

    static String sha256(byte[] bytes) {
        try {
            return ByteString.of(MessageDigest.getInstance("SHA-256").digest(bytes)).hex();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}

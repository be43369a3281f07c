package com.ofertasws.client.system;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import okhttp3.Headers;
import okhttp3.MediaType;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.RequestBody;
import okhttp3.Response;

/**
 * A server in front of the real API that passes everything through, except that it flips
 * one byte in the middle of every {@code dcz} body — a delta that no longer decodes, as
 * a broken cache or middlebox would serve. It records the headers of every request it
 * forwards, as the API receives them.
 */
final class CorruptingProxy implements AutoCloseable {
    private static final List<String> HOP_BY_HOP = java.util.Arrays.asList(
            "connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade");

    private final String upstream;
    private final OkHttpClient http = new OkHttpClient();
    private final HttpServer server;
    private final ExecutorService executor = Executors.newCachedThreadPool();
    private final List<Headers> requests = new ArrayList<>();
    private int corrupted;

    CorruptingProxy(String upstream) throws IOException {
        this.upstream = upstream;
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", this::forward);
        server.setExecutor(executor);
        server.start();
    }

    String baseUrl() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    synchronized List<Headers> requests() {
        return new ArrayList<>(requests);
    }

    synchronized int corrupted() {
        return corrupted;
    }

    private void forward(HttpExchange exchange) throws IOException {
        try {
            Headers.Builder headers = new Headers.Builder();
            for (Map.Entry<String, List<String>> header : exchange.getRequestHeaders().entrySet()) {
                if (HOP_BY_HOP.contains(header.getKey().toLowerCase(Locale.ROOT))) {
                    continue;
                }
                for (String value : header.getValue()) {
                    headers.add(header.getKey(), value);
                }
            }
            byte[] requestBody = readAll(exchange.getRequestBody());
            String method = exchange.getRequestMethod();
            boolean hasBody = method.equals("POST") || method.equals("PUT");
            Request request = new Request.Builder()
                    .url(upstream + exchange.getRequestURI())
                    .headers(headers.build())
                    .method(method, hasBody ? RequestBody.create(MediaType.parse("application/json"), requestBody) : null)
                    .build();
            synchronized (this) {
                requests.add(request.headers());
            }
            try (Response response = http.newCall(request).execute()) {
                byte[] body = response.body().bytes();
                if ("dcz".equals(response.header("Content-Encoding")) && body.length > 0) {
                    body[body.length / 2] ^= 0x55;
                    synchronized (this) {
                        corrupted++;
                    }
                }
                for (String name : response.headers().names()) {
                    if (!HOP_BY_HOP.contains(name.toLowerCase(Locale.ROOT))) {
                        exchange.getResponseHeaders().put(name, response.headers(name));
                    }
                }
                boolean noBody = body.length == 0 || method.equals("HEAD");
                exchange.sendResponseHeaders(response.code(), noBody ? -1 : body.length);
                if (!noBody) {
                    try (OutputStream out = exchange.getResponseBody()) {
                        out.write(body);
                    }
                }
            }
        } finally {
            exchange.close();
        }
    }

    private static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buffer = new byte[8192];
        int n;
        while ((n = in.read(buffer)) > 0) {
            out.write(buffer, 0, n);
        }
        return out.toByteArray();
    }

    @Override
    public void close() {
        server.stop(0);
        executor.shutdownNow();
    }
}

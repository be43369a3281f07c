package com.ofertasws.client;

import java.io.IOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

import okhttp3.Interceptor;
import okhttp3.MediaType;
import okhttp3.Protocol;
import okhttp3.Request;
import okhttp3.Response;
import okhttp3.ResponseBody;

/**
 * A server answering in-process, as the application interceptor after the one under
 * test: it sees each request exactly as the client built it (before OkHttp adds its own
 * headers) and answers without a socket. Answers are queued in order; when the queue is
 * empty the default answer serves. Thread-safe.
 */
final class FakeServer implements Interceptor {
    static final MediaType JSON = MediaType.parse("application/json");

    /** Makes the answer to one request. */
    interface Answer {
        Response answer(Request request) throws IOException;
    }

    private final Deque<Answer> queued = new ArrayDeque<>();
    private final List<Request> requests = new ArrayList<>();
    private Answer fallback = request -> {
        throw new AssertionError("unexpected request " + request);
    };

    synchronized FakeServer then(Answer answer) {
        queued.add(answer);
        return this;
    }

    synchronized FakeServer otherwise(Answer answer) {
        fallback = answer;
        return this;
    }

    synchronized List<Request> requests() {
        return new ArrayList<>(requests);
    }

    synchronized Request lastRequest() {
        return requests.get(requests.size() - 1);
    }

    @Override
    public Response intercept(Chain chain) throws IOException {
        Answer answer;
        synchronized (this) {
            requests.add(chain.request());
            answer = queued.isEmpty() ? fallback : queued.poll();
        }
        return answer.answer(chain.request());
    }

    /** A 200 of {@code body} in {@code coding} (null: identity) with the snapshot's headers. */
    static Response ok(Request request, byte[] body, String coding, String etag, long count) {
        Response.Builder response = status(request, 200)
                .header("Content-Type", "application/json")
                .header("Content-Length", Integer.toString(body.length))
                .header("ETag", etag)
                .header("X-Ofertas-Count", Long.toString(count))
                .header("Vary", "Accept-Encoding, Available-Dictionary")
                .body(ResponseBody.create(JSON, body));
        if (coding != null) {
            response.header("Content-Encoding", coding);
        }
        return response.build();
    }

    static Response notModified(Request request, String etag) {
        return status(request, 304).header("ETag", etag).body(ResponseBody.create(null, new byte[0])).build();
    }

    static Response.Builder status(Request request, int code) {
        return new Response.Builder().request(request).protocol(Protocol.HTTP_1_1).code(code).message("fake " + code);
    }
}

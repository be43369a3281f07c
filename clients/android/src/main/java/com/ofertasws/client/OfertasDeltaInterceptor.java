package com.ofertasws.client;

import java.io.File;
import java.io.IOException;

import okhttp3.Interceptor;
import okhttp3.Request;
import okhttp3.Response;

/**
 * Delta downloads (RFC 9842, {@code Content-Encoding: dcz}) of
 * {@code GET /api/v4/ofertasws} for an app's {@code OkHttpClient}, which does not speak
 * RFC 9842 itself. Added as an <em>application</em> interceptor, it keeps the last
 * snapshot document in a directory the app gives and asks for only what changed since;
 * the app calls the URL as before and gets the plain JSON document with status 200 —
 * also when the server answered 304 (the kept document is current) or a delta.
 *
 * <pre>{@code
 * OkHttpClient client = new OkHttpClient.Builder()
 *     .addInterceptor(new OfertasDeltaInterceptor(new File(context.getCacheDir(), "ofertasws")))
 *     .build();
 * }</pre>
 *
 * <p>Only {@code GET} requests whose path is {@value #PATH} are handled; everything else
 * passes through. Answers other than 200 and 304 (401, 503…) reach the app untouched.
 * An unusable answer — a delta that does not decode or was made against another
 * document, a document that fails its checks — is replaced by one plain request, so the
 * app never sees an error a full download fixes; a damaged kept document is deleted and
 * never named as a dictionary. Network failures are {@link IOException}s as usual.
 *
 * <p>Thread-safe: one instance may serve concurrent calls. Use one directory per
 * instance, and one instance per {@code OkHttpClient} (or share it between clients).
 * It must be an application interceptor ({@code addInterceptor}): it may call
 * {@code proceed} twice, which network interceptors may not.
 */
public final class OfertasDeltaInterceptor implements Interceptor {
    /** The path handled. */
    public static final String PATH = "/api/v4/ofertasws";
    /** Largest document accepted (and kept): RFC 9842 clients cap a dictionary there. */
    public static final long MAX_DOCUMENT_BYTES = 100L << 20;

    private final DocumentStore store;
    private final BodyDecoder decoder;
    private final TransferListener listener;

    /** Keeps the document in {@code directory} (created when missing). */
    public OfertasDeltaInterceptor(File directory) {
        this(directory, null);
    }

    /**
     * Keeps the document in {@code directory} (created when missing) and tells
     * {@code listener} (null for none) what each call transferred.
     */
    public OfertasDeltaInterceptor(File directory, TransferListener listener) {
        this(directory, listener, MAX_DOCUMENT_BYTES);
    }

    OfertasDeltaInterceptor(File directory, TransferListener listener, long maxDocumentBytes) {
        if (directory == null) {
            throw new NullPointerException("directory");
        }
        this.store = new DocumentStore(directory, maxDocumentBytes);
        this.decoder = new BodyDecoder(maxDocumentBytes);
        this.listener = listener;
    }

    @Override
    public Response intercept(Chain chain) throws IOException {
        Request request = chain.request();
        if (!"GET".equals(request.method()) || !PATH.equals(request.url().encodedPath())) {
            return chain.proceed(request);
        }
        DeltaCall call = new DeltaCall(chain, store, decoder);
        Response response = call.run();
        if (listener != null) {
            listener.onTransfer(request, call.transfer());
        }
        return response;
    }
}

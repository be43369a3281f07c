package com.ofertasws.client;

import okhttp3.Request;

/**
 * Told what each call of the snapshot URL transferred — the hook for an app that shows
 * the bytes it saved, or logs fallbacks. Called on the thread running the call, once the
 * answer for the app is ready and before the app reads it (not for a call that fails
 * with an {@link java.io.IOException}). Keep it short and do not throw from it.
 */
public interface TransferListener {
    /** {@code request} is the app's own request, as it reached the interceptor. */
    void onTransfer(Request request, Transfer transfer);
}

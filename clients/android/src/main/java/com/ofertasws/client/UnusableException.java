package com.ofertasws.client;

/**
 * A response or a kept document that cannot be used, for a reason a plain full download
 * fixes: a body that does not decode, a delta made against another dictionary, a
 * document that fails its checks, a damaged store. It never leaves this package: the
 * interceptor turns it into one plain retry (or, when the retry is unusable too, into an
 * {@link java.io.IOException} for the app).
 */
final class UnusableException extends Exception {
    private static final long serialVersionUID = 1L;

    UnusableException(String reason) {
        super(reason);
    }

    UnusableException(String reason, Throwable cause) {
        super(reason, cause);
    }
}

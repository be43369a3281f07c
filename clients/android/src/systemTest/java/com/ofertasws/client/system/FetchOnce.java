package com.ofertasws.client.system;

import java.io.File;
import java.io.IOException;

/**
 * One call of the snapshot URL by an app with the interceptor, from the command line, for
 * tests that set several clients side by side on the same versions (the Rust system test
 * {@code system-tests/tests/browser/side_by_side.rs}). Keeps its document in
 * {@code DIRECTORY} between runs, as an app would between launches, and prints one line:
 * {@code status=<app's status> server=<server's status> coding=<coding|none>
 * body=<body bytes> wire=<bytes read from the socket> sha256=<of the app's document>}.
 *
 * <p>Usage: {@code FetchOnce URL TOKEN DIRECTORY}.
 */
public final class FetchOnce {
    private FetchOnce() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 3) {
            System.err.println("usage: FetchOnce URL TOKEN DIRECTORY");
            System.exit(2);
        }
        App app = new App(new File(args[2]), args[0], args[1]);
        App.Fetch fetch = app.fetch();
        String coding = fetch.transfer == null ? null : fetch.transfer.getContentCoding();
        System.out.println("status=" + fetch.status
                + " server=" + (fetch.transfer == null ? fetch.status : fetch.transfer.getServerStatus())
                + " coding=" + (coding == null ? "none" : coding)
                + " body=" + (fetch.transfer == null ? 0 : fetch.transfer.getBodyBytes())
                + " wire=" + fetch.wireBytes
                + " sha256=" + fetch.sha256);
    }
}

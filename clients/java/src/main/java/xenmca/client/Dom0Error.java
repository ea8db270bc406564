package xenmca.client;

/** Why dom0 stopped short: one line on stderr, with exit status 2 (could not run) or 1 (failed while running). */
public final class Dom0Error extends Exception {
  private static final long serialVersionUID = 1L;

  /** 2: could not run (unreachable, refused identity); 1: failed while running (a log write). */
  public final int exitCode;

  /** With the one-line message and the exit status. */
  public Dom0Error(String message, int exitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

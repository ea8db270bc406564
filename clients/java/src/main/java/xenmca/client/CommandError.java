package xenmca.client;

/** A problem that stops a command before or while it starts: one line on stderr, exit status 2. */
public final class CommandError extends Exception {
  private static final long serialVersionUID = 1L;

  /** With the one-line message shown to the user. */
  public CommandError(String message) {
    super(message);
  }
}

package xenmca.client;

/** A token file that cannot be used: unreadable, not a mapping, or without the identity wanted. */
public final class TokenFileError extends Exception {
  private static final long serialVersionUID = 1L;

  /** With the one-line message shown to the user. */
  public TokenFileError(String message) {
    super(message);
  }
}

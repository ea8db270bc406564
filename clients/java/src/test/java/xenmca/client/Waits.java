package xenmca.client;

import java.util.concurrent.Callable;

/** Polling with a deadline: a live test waits for a condition, never for a fixed time. */
final class Waits {
  private Waits() {}

  /** Polls check every 100 ms until it returns a non-null, non-false value; fails after timeoutMs. */
  static <T> T until(Callable<T> check, long timeoutMs, String what) throws InterruptedException {
    long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
    Object last = null;
    for (;;) {
      try {
        T value = check.call();
        if (value != null && !Boolean.FALSE.equals(value)) return value;
        last = value;
      } catch (Exception e) {
        last = e;
      }
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out after " + timeoutMs + " ms waiting for " + what + " (last: " + last + ")");
      }
      Thread.sleep(100);
    }
  }
}

package xenmca.client;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import sun.misc.Signal;
import sun.misc.SignalHandler;

/**
 * SIGINT and SIGTERM as requests to stop: instead of the JVM's default (exit at once), each calls
 * stop with the signal's name, so a dom0 pass in progress finishes and the exit status stays 0.
 */
final class StopSignals {
  private StopSignals() {}

  /** Install the handlers; the Runnable returned puts the previous ones back. */
  static Runnable install(Consumer<String> stop) {
    List<Runnable> restore = new ArrayList<>();
    for (String name : List.of("INT", "TERM")) {
      Signal signal = new Signal(name);
      SignalHandler previous = Signal.handle(signal, s -> stop.accept("SIG" + name));
      restore.add(() -> Signal.handle(signal, previous));
    }
    return () -> restore.forEach(Runnable::run);
  }
}

package xenmca.client;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.util.Arrays;
import java.util.logging.Level;
import java.util.logging.LogManager;
import java.util.logging.Logger;

/** The entry point of target/xenmca-java.jar (and bin/xenmca-java): runs {@link Cli} and exits with its status. */
public final class Main {
  private Main() {}

  /** Runs the command line and exits. */
  public static void main(String[] args) {
    // Errors are reported in one line by Cli; grpc-java's own log lines would break that.
    LogManager.getLogManager().reset();
    Logger.getLogger("").setLevel(Level.OFF);
    // Unbuffered standard streams: a dom0 line is handed to the OS before its CLEAR goes out.
    Cli.Io io = new Cli.Io(new FileOutputStream(FileDescriptor.out), new FileOutputStream(FileDescriptor.err),
        System.getenv(), true);
    int status = Cli.main(Arrays.asList(args), io);
    System.exit(status);
  }
}

package xenmca.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The PEM bytes of --tls-cert, --tls-key and --tls-ca, read once and checked to hold what they
 * should (a certificate, a private key, a certificate). The key may be PKCS#8 ({@code BEGIN PRIVATE
 * KEY}, what {@code xenmca certs generate} writes) or a traditional RSA or EC key, which {@link
 * PemKeys} turns into PKCS#8 for Java.
 */
public final class TlsFiles {
  /** This client's certificate chain (PEM). */
  public final byte[] cert;
  /** Its private key, as PKCS#8 PEM. */
  public final byte[] key;
  /** The CA certificates that the coordinator's certificate must chain to (PEM). */
  public final byte[] ca;

  private TlsFiles(byte[] cert, byte[] key, byte[] ca) {
    this.cert = cert;
    this.key = key;
    this.ca = ca;
  }

  /**
   * Read the three files; null without TLS.
   *
   * @throws CommandError naming the file that cannot be read or is not PEM
   */
  public static TlsFiles read(CommandLine.TlsPaths paths) throws CommandError {
    if (paths == null) return null;
    byte[] cert = readPem("tls-cert", paths.cert, "-----BEGIN CERTIFICATE-----", "certificate");
    byte[] key = readPem("tls-key", paths.key, "PRIVATE KEY-----", "private key");
    byte[] ca = readPem("tls-ca", paths.ca, "-----BEGIN CERTIFICATE-----", "certificate");
    byte[] pkcs8;
    try {
      pkcs8 = PemKeys.toPkcs8Pem(new String(key, StandardCharsets.US_ASCII));
    } catch (IllegalArgumentException e) {
      throw new CommandError("--tls-key: " + paths.key + ": " + e.getMessage());
    }
    return new TlsFiles(cert, pkcs8, ca);
  }

  private static byte[] readPem(String flag, String file, String marker, String what) throws CommandError {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(Path.of(file));
    } catch (IOException | RuntimeException e) {
      throw new CommandError("--" + flag + ": cannot read " + file + ": " + IoErrors.code(e));
    }
    if (!new String(bytes, StandardCharsets.ISO_8859_1).contains(marker)) {
      throw new CommandError("--" + flag + ": " + file + " holds no PEM " + what);
    }
    return bytes;
  }
}

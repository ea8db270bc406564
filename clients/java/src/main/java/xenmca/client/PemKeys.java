package xenmca.client;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Private keys in PEM as Java's TLS wants them: PKCS#8. A PKCS#8 key passes unchanged; a
 * traditional (OpenSSL) {@code RSA PRIVATE KEY} or {@code EC PRIVATE KEY} is wrapped in a PKCS#8
 * PrivateKeyInfo. Encrypted keys are refused.
 */
public final class PemKeys {
  private PemKeys() {}

  private static final Pattern BLOCK =
      Pattern.compile("-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\\s*(.*?)-----END \\1-----", Pattern.DOTALL);

  // DER of the OIDs rsaEncryption (1.2.840.113549.1.1.1) and id-ecPublicKey (1.2.840.10045.2.1).
  private static final byte[] RSA_OID = {0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86, (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01};
  private static final byte[] EC_OID = {0x06, 0x07, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x02, 0x01};

  /** The key as PKCS#8 PEM. */
  public static byte[] toPkcs8Pem(String pem) {
    Matcher m = BLOCK.matcher(pem);
    if (!m.find()) throw new IllegalArgumentException("holds no PEM private key");
    String kind = m.group(1);
    if (kind.equals("PRIVATE KEY")) return pem.getBytes(StandardCharsets.US_ASCII);
    if (kind.equals("ENCRYPTED PRIVATE KEY") || m.group(2).contains("Proc-Type:")) {
      throw new IllegalArgumentException("an encrypted private key is not supported");
    }
    byte[] der;
    try {
      der = Base64.getMimeDecoder().decode(m.group(2));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("bad base64 in the PEM private key");
    }
    byte[] info;
    if (kind.equals("RSA PRIVATE KEY")) {
      info = privateKeyInfo(sequence(RSA_OID, new byte[] {0x05, 0x00}), der);
    } else if (kind.equals("EC PRIVATE KEY")) {
      info = privateKeyInfo(sequence(EC_OID, curveOf(der)), der);
    } else {
      throw new IllegalArgumentException("unsupported key type '" + kind + "'");
    }
    String body = Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(info);
    return ("-----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY-----\n").getBytes(StandardCharsets.US_ASCII);
  }

  /** PrivateKeyInfo ::= SEQUENCE { version 0, algorithm, OCTET STRING key }. */
  private static byte[] privateKeyInfo(byte[] algorithm, byte[] key) {
    return sequence(new byte[] {0x02, 0x01, 0x00}, algorithm, tlv(0x04, key));
  }

  /** The named curve's OID (with its tag) from an ECPrivateKey's [0] parameters. */
  private static byte[] curveOf(byte[] ecPrivateKey) {
    int[] pos = {0};
    int[] outer = header(ecPrivateKey, pos);
    if (outer[0] != 0x30) throw new IllegalArgumentException("EC private key is not a DER SEQUENCE");
    int end = pos[0] + outer[1];
    while (pos[0] < end) {
      int start = pos[0];
      int[] h = header(ecPrivateKey, pos);
      if (h[0] == 0xa0) {
        int oidStart = pos[0];
        int[] oid = header(ecPrivateKey, pos);
        if (oid[0] != 0x06) break;
        byte[] out = new byte[pos[0] - oidStart + oid[1]];
        System.arraycopy(ecPrivateKey, oidStart, out, 0, out.length);
        return out;
      }
      pos[0] = start;
      header(ecPrivateKey, pos);
      pos[0] += h[1];
    }
    throw new IllegalArgumentException("EC private key names no curve");
  }

  /** Reads a DER tag and length at pos[0]; leaves pos[0] at the contents. */
  private static int[] header(byte[] der, int[] pos) {
    if (pos[0] + 2 > der.length) throw new IllegalArgumentException("truncated DER");
    int tag = der[pos[0]++] & 0xff;
    int length = der[pos[0]++] & 0xff;
    if (length >= 0x80) {
      int bytes = length & 0x7f;
      if (bytes < 1 || bytes > 3 || pos[0] + bytes > der.length) throw new IllegalArgumentException("bad DER length");
      length = 0;
      for (int i = 0; i < bytes; i++) length = (length << 8) | (der[pos[0]++] & 0xff);
    }
    if (pos[0] + length > der.length) throw new IllegalArgumentException("truncated DER");
    return new int[] {tag, length};
  }

  private static byte[] sequence(byte[]... parts) {
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    for (byte[] part : parts) body.writeBytes(part);
    return tlv(0x30, body.toByteArray());
  }

  private static byte[] tlv(int tag, byte[] contents) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(tag);
    int n = contents.length;
    if (n < 0x80) {
      out.write(n);
    } else if (n < 0x100) {
      out.write(0x81);
      out.write(n);
    } else if (n < 0x10000) {
      out.write(0x82);
      out.write(n >> 8);
      out.write(n);
    } else {
      out.write(0x83);
      out.write(n >> 16);
      out.write(n >> 8);
      out.write(n);
    }
    out.writeBytes(contents);
    return out.toByteArray();
  }
}

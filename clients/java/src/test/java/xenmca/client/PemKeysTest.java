package xenmca.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.KeyFactory;
import java.security.KeyPairGenerator;
import java.security.interfaces.ECPrivateKey;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import org.junit.jupiter.api.Test;

/** Private keys in the PEM forms OpenSSL writes, turned into the PKCS#8 Java's TLS reads. */
class PemKeysTest {
  private static String pem(String label, byte[] der) {
    return "-----BEGIN " + label + "-----\n" + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der) + "\n-----END " + label
        + "-----\n";
  }

  private static byte[] der(String pem) {
    String body = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
    return Base64.getDecoder().decode(body);
  }

  @Test
  void pkcs8PassesUnchanged() throws Exception {
    KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
    generator.initialize(new ECGenParameterSpec("secp256r1"));
    String pem = pem("PRIVATE KEY", generator.generateKeyPair().getPrivate().getEncoded());
    assertEquals(pem, new String(PemKeys.toPkcs8Pem(pem), StandardCharsets.US_ASCII));
  }

  @Test
  void rsaPkcs1BecomesPkcs8() throws Exception {
    KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
    generator.initialize(2048);
    byte[] pkcs8 = generator.generateKeyPair().getPrivate().getEncoded();
    // The PKCS#1 key is the last element of PKCS#8's PrivateKeyInfo: an OCTET STRING of 2 length bytes (0x82).
    int at = pkcs8.length;
    for (int i = 0; i < pkcs8.length - 4; i++) {
      if (pkcs8[i] == 0x04 && pkcs8[i + 1] == (byte) 0x82 && ((pkcs8[i + 2] & 0xff) << 8 | (pkcs8[i + 3] & 0xff)) == pkcs8.length - i - 4) {
        at = i + 4;
        break;
      }
    }
    byte[] pkcs1 = Arrays.copyOfRange(pkcs8, at, pkcs8.length);
    byte[] converted = der(new String(PemKeys.toPkcs8Pem(pem("RSA PRIVATE KEY", pkcs1)), StandardCharsets.US_ASCII));
    assertArrayEquals(pkcs8, converted);
  }

  @Test
  void ecSec1BecomesPkcs8() throws Exception {
    KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
    generator.initialize(new ECGenParameterSpec("secp256r1"));
    ECPrivateKey key = (ECPrivateKey) generator.generateKeyPair().getPrivate();
    byte[] d = toFixed(key.getS(), 32);
    // ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] prime256v1 }
    byte[] curve = {0x06, 0x08, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x03, 0x01, 0x07};
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    body.writeBytes(new byte[] {0x02, 0x01, 0x01, 0x04, 0x20});
    body.writeBytes(d);
    body.writeBytes(new byte[] {(byte) 0xa0, (byte) curve.length});
    body.writeBytes(curve);
    ByteArrayOutputStream sec1 = new ByteArrayOutputStream();
    sec1.write(0x30);
    sec1.write(body.size());
    sec1.writeBytes(body.toByteArray());
    byte[] converted = der(new String(PemKeys.toPkcs8Pem(pem("EC PRIVATE KEY", sec1.toByteArray())), StandardCharsets.US_ASCII));
    ECPrivateKey read = (ECPrivateKey) KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(converted));
    assertEquals(key.getS(), read.getS());
  }

  @Test
  void refusesEncryptedAndUnknownKeys() {
    assertThrows(IllegalArgumentException.class, () -> PemKeys.toPkcs8Pem(pem("ENCRYPTED PRIVATE KEY", new byte[] {1})));
    assertThrows(IllegalArgumentException.class, () -> PemKeys.toPkcs8Pem(pem("DSA PRIVATE KEY", new byte[] {1})));
    assertThrows(IllegalArgumentException.class, () -> PemKeys.toPkcs8Pem("nothing here"));
  }

  private static byte[] toFixed(BigInteger value, int length) {
    byte[] bytes = value.toByteArray();
    byte[] out = new byte[length];
    int copy = Math.min(bytes.length, length);
    System.arraycopy(bytes, bytes.length - copy, out, length - copy, copy);
    return out;
  }
}

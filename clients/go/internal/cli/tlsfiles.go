package cli

import (
	"bytes"
	"os"

	"xenmca.dev/clients/go/internal/client"
	"xenmca.dev/clients/go/internal/oserr"
)

// readTLSFiles reads --tls-cert/--tls-key/--tls-ca (nil without TLS); the
// error names the file that cannot be read or holds no PEM.
func readTLSFiles(paths *TLSPaths) (*client.TLSFiles, error) {
	if paths == nil {
		return nil, nil
	}
	read := func(flag, file, marker, what string) ([]byte, error) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, commandErrorf("--%s: cannot read %s: %s", flag, file, oserr.Code(err))
		}
		if !bytes.Contains(data, []byte(marker)) {
			return nil, commandErrorf("--%s: %s holds no PEM %s", flag, file, what)
		}
		return data, nil
	}
	cert, err := read("tls-cert", paths.Cert, "-----BEGIN CERTIFICATE-----", "certificate")
	if err != nil {
		return nil, err
	}
	key, err := read("tls-key", paths.Key, "PRIVATE KEY-----", "private key")
	if err != nil {
		return nil, err
	}
	ca, err := read("tls-ca", paths.CA, "-----BEGIN CERTIFICATE-----", "certificate")
	if err != nil {
		return nil, err
	}
	return &client.TLSFiles{Cert: cert, Key: key, CA: ca}, nil
}

// tlsError reports TLS material the client cannot use (a key that does not
// match its certificate, say).
func tlsError(err error) error {
	return commandErrorf("--tls-cert/--tls-key/--tls-ca: %s", err)
}
